"""lvae_tf: Quasi-symplectic Langevin VAE in TensorFlow 2 + TensorFlow Probability."""
import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent


def _requirements():
  lines = (_HERE / 'requirements.txt').read_text().splitlines()
  return [l.strip() for l in lines if l.strip() and not l.startswith('#')]


setuptools.setup(
    name='lvae_tf',
    version='0.1.0',
    description=('Quasi-symplectic Langevin VAE and Hamiltonian VAE flows as '
                 'TensorFlow Probability bijectors.'),
    long_description=(_HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    packages=setuptools.find_packages(include=['lvae_tf', 'lvae_tf.*']),
    package_data={'lvae_tf': ['assets/*']},
    python_requires='>=3.10',
    install_requires=_requirements(),
    license='Apache-2.0',
)
