"""Flow steps of the Quasi-symplectic Langevin VAE as TFP bijectors.

Pure TensorFlow + TensorFlow Probability (no Keras, data or model code). Both
flows act on the structured event `[z, rho]` (position, momentum; each
`[..., D]`) and return one log-det per event, constant in the input:

* `QuasiSymplecticLangevin`: one step of paper Eq. 7 (corrected, see
  `docs/math.md` section 1), one gradient per step; `langevin_flow` chains K.
* `TemperedLeapfrog`: the whole K-step HVAE flow (math.md section 3), with
  2K (`'reference'`) or K + 1 (`'cached'`) gradients; `hamiltonian_flow` and
  `fixed_tempering` build it.
* `value_and_gradient` and `GradientCounter`: the target gradient every step
  uses (differentiable, for training through the flow) and its counter.
"""

from lvae_tf.bijectors.gradients import GradientCounter
from lvae_tf.bijectors.gradients import value_and_gradient
from lvae_tf.bijectors.quasi_symplectic_langevin import langevin_flow
from lvae_tf.bijectors.quasi_symplectic_langevin import QuasiSymplecticLangevin
from lvae_tf.bijectors.tempered_leapfrog import fixed_tempering
from lvae_tf.bijectors.tempered_leapfrog import hamiltonian_flow
from lvae_tf.bijectors.tempered_leapfrog import TemperedLeapfrog

__all__ = [
    'GradientCounter',
    'QuasiSymplecticLangevin',
    'TemperedLeapfrog',
    'fixed_tempering',
    'hamiltonian_flow',
    'langevin_flow',
    'value_and_gradient',
]
