"""Run configuration: the `Config` dataclass, its validation and the presets.

Plain data with no TensorFlow import, so a command line can reject a bad configuration in a
fraction of a second, before TensorFlow loads.
"""

import dataclasses
import os
from typing import Optional

__all__ = ['Config', 'ConfigError', 'FLOWS', 'PRESETS', 'check_writable']


class ConfigError(ValueError):
  """A configuration that cannot run (bad value, or a checkpoint from another config)."""


FLOWS = ('vae', 'hvae', 'langevin')


@dataclasses.dataclass
class Config:
  """Everything that defines a run. Defaults are the paper's protocol (math.md section 5)."""
  flow: str = 'langevin'            # 'vae' | 'hvae' | 'langevin'
  num_steps: int = 10               # K
  hvae_gradient: str = 'reference'  # 'reference' (2K gradients) | 'cached' (K+1)
  tempering: str = 'fixed'          # HVAE: 'fixed' | 'free' | 'none'
  step_size: Optional[float] = None  # initial tau / eps; None -> model default (0.2)
  damping: float = 0.1              # Langevin initial nu
  initial_temperature: float = 1.5  # HVAE 'fixed' initial T0
  learn_flow: bool = True
  latent_dim: int = 64
  activation: str = 'softplus'
  init: str = 'he'                  # 'he' | 'reference' | 'glorot' (see models/networks.py)
  batch_size: int = 1000
  learning_rate: float = 5e-4
  steps_per_epoch: int = 50         # validation ELBO checked every this many steps
  max_epochs: int = 2000
  patience: int = 100               # epochs without validation improvement
  eval_batch_size: int = 1000
  nll_samples: int = 1000
  nll_passes: int = 3
  nll_chunk: int = 100
  nll_batch_size: int = 100
  nll_test_images: int = 0          # 0 -> the whole test set
  test_images: int = 0              # test ELBO / FID reference images; 0 -> all 10k
  fid_samples: int = 10000          # generated images for classifier FID/IS (0: skip)
  train_images: int = 0             # 0 -> all 50k (a subset for tests)
  valid_images: int = 0             # 0 -> all 10k
  seed: int = 85547
  jit_compile: bool = False
  deterministic: bool = False       # tf.config.experimental.enable_op_determinism
  strategy: str = 'default'         # 'default' | 'mirrored' | 'multiworker'
  preset: str = 'custom'
  verbose: int = 2

  def validate(self):
    """Raises `ConfigError` naming the bad field, its value and what was expected."""
    def need(cond, msg):
      if not cond:
        raise ConfigError(msg)
    need(self.flow in FLOWS, f'flow must be one of {FLOWS}, got {self.flow!r}.')
    need(self.num_steps >= 0, f'steps (K) must be >= 0, got {self.num_steps}.')
    need(self.flow != 'vae' or self.num_steps == 0,
         f"flow 'vae' has no flow steps: steps must be 0, got {self.num_steps}.")
    need(self.flow == 'vae' or self.num_steps >= 1,
         f'flow {self.flow!r} needs steps >= 1, got {self.num_steps} '
         "(use --flow=vae for K = 0).")
    need(self.hvae_gradient in ('reference', 'cached'),
         f"hvae_gradient must be 'reference' or 'cached', got "
         f'{self.hvae_gradient!r}.')
    need(self.tempering in ('fixed', 'free', 'none'),
         f"tempering must be 'fixed', 'free' or 'none', got {self.tempering!r}.")
    need(self.step_size is None or 0 < self.step_size < 0.5,
         f'step_size must be in (0, 0.5), got {self.step_size}.')
    need(self.damping > 0, f'damping must be > 0, got {self.damping}.')
    need(self.initial_temperature > 1,
         f'initial_temperature must be > 1, got {self.initial_temperature}.')
    for name in ('batch_size', 'eval_batch_size', 'steps_per_epoch',
                 'max_epochs', 'nll_samples', 'nll_passes', 'nll_chunk',
                 'nll_batch_size', 'latent_dim'):
      need(getattr(self, name) > 0,
           f'{name} must be positive, got {getattr(self, name)}.')
    need(self.patience >= 0, f'patience must be >= 0, got {self.patience}.')
    need(self.learning_rate > 0,
         f'learning_rate must be positive, got {self.learning_rate}.')
    need(self.fid_samples == 0 or self.fid_samples >= 10,
         f'fid_samples must be 0 (skip) or >= 10, got {self.fid_samples}.')
    for name in ('nll_test_images', 'test_images', 'train_images',
                 'valid_images'):
      need(getattr(self, name) >= 0,
           f'{name} must be >= 0 (0 = all), got {getattr(self, name)}.')
    need(self.strategy in ('default', 'mirrored', 'multiworker'),
         f"strategy must be 'default', 'mirrored' or 'multiworker', got "
         f'{self.strategy!r}.')
    need(self.activation in ('softplus', 'relu', 'elu', 'tanh'),
         f'activation must be softplus, relu, elu or tanh, got '
         f'{self.activation!r}.')
    need(self.init in ('he', 'reference', 'glorot'),
         f"init must be 'he', 'reference' or 'glorot', got {self.init!r}.")

  def training_identity(self):
    """The fields a checkpoint depends on: resuming with other values is refused."""
    keep = ('flow', 'num_steps', 'hvae_gradient', 'tempering', 'step_size',
            'damping', 'initial_temperature', 'learn_flow', 'latent_dim',
            'activation', 'init', 'batch_size', 'learning_rate',
            'steps_per_epoch', 'train_images', 'seed')
    return {k: getattr(self, k) for k in keep}


# The paper's budget reads "steps" as epochs (math.md section 5): 50 steps of batch 1000.
PRESETS = {
    'paper': dict(batch_size=1000, steps_per_epoch=50, max_epochs=2000,
                  patience=100, nll_samples=1000, nll_passes=3),
    # About 10 minutes for K = 10 on a 2-core CPU (numbers in the README).
    # Deviations from the paper, for time: batch 100, lr 1e-3, 1,200 steps, validation on
    # 2,000 images, NLL with S = 100 on the first 500 test images, one pass.
    'quick': dict(batch_size=100, learning_rate=1e-3, steps_per_epoch=200,
                  max_epochs=6, patience=6, eval_batch_size=500,
                  valid_images=2000, nll_samples=100, nll_passes=1,
                  nll_chunk=50, nll_test_images=500),
    # Seconds: for tests and smoke runs only; its numbers mean nothing.
    'tiny': dict(batch_size=20, steps_per_epoch=3, max_epochs=2, patience=2,
                 latent_dim=8, eval_batch_size=50, nll_samples=6, nll_passes=2,
                 nll_chunk=3, nll_batch_size=25, nll_test_images=50,
                 train_images=200, valid_images=50, test_images=200,
                 fid_samples=100),
}


def check_writable(directory, keep=True):
  """Creates `directory` if needed and proves it writable, or raises `ConfigError`.

  Args:
    directory: path of an output directory.
    keep: keep the directories created for the check; `False` removes those it created (so a
      command that fails later has written nothing).
  """
  created = []
  path = os.path.abspath(directory)
  while not os.path.exists(path):
    created.append(path)
    path = os.path.dirname(path)
  try:
    os.makedirs(directory, exist_ok=True)
    probe = os.path.join(directory, '.write-test')
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    raise ConfigError(
        f'output directory {directory!r} is not writable: {e}.') from e
  finally:
    if not keep:
      for d in created:  # innermost first: leave no empty directories behind
        if os.path.isdir(d) and not os.listdir(d):
          os.rmdir(d)
