"""Evaluation of a trained model: importance-sampled NLL (resumable), the NLL curve, FID/IS.

`evaluate_nll` appends every finished batch to a partial file whose header names the model
(`weights_fingerprint`) and the NLL setting (`nll_setting_path`), so an interrupted NLL resumes
where it stopped and gives exactly the numbers of an uninterrupted one. `nll_curve` measures the
weights kept at chosen epochs (`lvae_tf.callbacks.kept_epoch_checkpoint`) the same way.
"""

import dataclasses
import hashlib
import json
import math
import os
import time
import warnings

import numpy as np
import tensorflow as tf

from lvae_tf import data as data_lib
from lvae_tf import filesafety
from lvae_tf import schema
from lvae_tf.callbacks import kept_epoch_checkpoint

__all__ = [
    'evaluate_nll',
    'indices_digest',
    'nll_curve',
    'run_nll',
    'nll_setting_path',
    'nll_subset_indices',
    'sample_quality',
    'weights_fingerprint',
]


def nll_subset_indices(num_test, config):
  """Indices of the test images the NLL uses: a fixed random subset (or the first ones).

  The random subset depends only on `nll_subset_seed` and the size of the test set, so every
  model of a protocol is measured on the same images.
  """
  n = min(config.nll_test_images or num_test, num_test)
  if config.nll_subset == 'first':
    return np.arange(n)
  rng = np.random.default_rng(config.nll_subset_seed)
  return np.sort(rng.permutation(num_test)[:n])


def indices_digest(indices):
  """sha256 (16 hex digits) of image indices: which test images an NLL is of."""
  return hashlib.sha256(np.asarray(indices, np.int64).tobytes()).hexdigest()[:16]


def weights_fingerprint(model):
  """sha256 (16 hex digits) of the model's weights: which trained model a partial NLL is of."""
  digest = hashlib.sha256()
  for w in model.get_weights():
    digest.update(np.ascontiguousarray(w).tobytes())
  return digest.hexdigest()[:16]


def _read_partial_nll(path, identity):
  """Batches `{(pass, batch): ln p(x)}` already in `path`, if it was written for `identity`.

  A partial file of another model or setting (other header) is ignored; a last line cut by a
  kill is dropped; an entry that does not fit the setting (a pass or batch out of range, a
  batch of the wrong size, a value that is not a finite number) is recomputed, with a warning
  naming the file and line: it is never averaged in.
  """
  if not path or not os.path.exists(path):
    return {}
  with open(path, 'rb') as f:
    lines = f.read().split(b'\n')
  try:
    if json.loads(lines[0]) != {'identity': identity}:
      return {}
  except ValueError:
    return {}
  size, images = identity['batch_size'], identity['images']
  done = {}
  for number, line in enumerate(lines[1:], 2):
    if not line.strip():
      continue
    try:
      entry = schema.validate_nll_entry(json.loads(line), schema._Checker(path))  # pylint: disable=protected-access
      p, i, values = entry['pass'], entry['batch'], entry['log_px']
      if not (0 <= p < identity['passes'] and 0 <= i * size < images):
        raise schema.SchemaError(path, 'pass/batch', f'({p}, {i}) is not a batch of this NLL.')
      if len(values) != min(size, images - i * size):
        raise schema.SchemaError(path, 'log_px', f'{len(values)} values for batch {i} of '
                                 f'{min(size, images - i * size)} images.')
    except (ValueError, schema.SchemaError) as e:
      if number < len(lines) or not isinstance(e, json.JSONDecodeError):
        warnings.warn(f'{path} line {number} does not fit its NLL setting ({e}): that batch is '
                      'computed again.')
      continue  # a last line cut by a kill: computed again, silently
    done[(p, i)] = np.asarray(values, np.float64)
  return done


def nll_setting_path(directory, stem, config, images, seed, identity=None):
  """The partial-NLL file of one NLL setting: `<directory>/<stem>-<hash of the setting>.jsonl`.

  The setting is everything `evaluate_nll` puts into its identity except the weights (images,
  seed, samples, passes, batch size, chunk, and the `identity` given, e.g. which images): each
  setting keeps its own progress, and a re-evaluation with other settings never replaces it.
  """
  setting = _nll_identity(identity, images, seed, config)
  setting.pop('weights', None)
  digest = hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:12]
  return os.path.join(directory, f'{stem}-{digest}.jsonl')


def _nll_identity(identity, images, seed, config):
  return dict(identity or {}, images=images, seed=list(np.atleast_1d(seed).tolist()),
              samples=config.nll_samples, passes=config.nll_passes,
              batch_size=config.nll_batch_size, chunk=config.nll_chunk)


def _adopt_legacy_partial(legacy, path, identity):
  """Renames a partial file of the single-file layout (`nll_partial.jsonl`) to `path` if it
  holds this very NLL (its header is `identity`), so an interrupted NLL keeps its progress."""
  if os.path.exists(path) or not os.path.exists(legacy):
    return
  try:
    with open(legacy) as f:
      header = json.loads(f.readline())
  except (OSError, ValueError):
    return
  if header == {'identity': identity}:
    os.replace(legacy, path)


def evaluate_nll(model, images, config, seed, progress=True, binarized=False,
                 partial_path=None, identity=None):
  """Importance-sampled NLL (math.md section 4) of each image, averaged over passes.

  With `partial_path`, every finished batch is appended to that file (JSON lines under a
  header holding `identity`), and a new call with the same `identity` skips the batches it
  holds: an interrupted NLL resumes where it stopped and gives exactly the numbers of an
  uninterrupted one (each batch's binarisation and noise are seeded by its pass and index).

  Returns:
    dict: `nll_mean` (mean over images), `nll_sem` (its standard error over images, from
    the per-image NLLs averaged over passes), `nll_std` (spread of the per-pass means, 0 for
    one pass), `nll_per_pass`, `nll_batches_resumed` (batches read from `partial_path`, whose
    time an earlier call spent), `nll_per_image` (averaged over passes, in the order of
    `images`, rounded to 1e-4 nats).
  """
  identity = _nll_identity(identity, len(images), seed, config)
  done = _read_partial_nll(partial_path, identity)
  if partial_path:
    # Rewritten whole (header and the intact batches): a line cut by a kill must not prefix
    # the next appended one.
    filesafety.write_text_atomic(partial_path, ''.join(
        json.dumps(entry) + '\n' for entry in [{'identity': identity}] + [
            {'pass': p, 'batch': i, 'log_px': [float(v) for v in values]}
            for (p, i), values in done.items()]))
  if progress and done:
    print(f'NLL: resuming, {len(done)} batches already in {partial_path}.', flush=True)
  per_image = []
  batches = math.ceil(len(images) / config.nll_batch_size)
  t0 = time.time()
  computed = 0
  for p in range(config.nll_passes):
    dataset = data_lib.eval_dataset(images, config.nll_batch_size,
                                    seed=(seed, 1000 + p),
                                    binarization='dynamic', binarized=binarized)
    values = []
    for i, x in enumerate(dataset):
      if (p, i) in done:
        values.append(done[(p, i)])
        continue
      values.append(model.log_marginal_likelihood(
          x, num_samples=config.nll_samples, chunk_size=config.nll_chunk,
          seed=(seed, 100000 * (p + 1) + i)))
      computed += 1
      if partial_path:
        filesafety.append_text(partial_path, json.dumps(
            {'pass': p, 'batch': i, 'log_px': [float(v) for v in values[-1]]}) + '\n')
      finished = p * batches + i + 1
      if progress and (finished % max(1, batches // 10) == 0 or finished == batches):
        elapsed = time.time() - t0
        eta = elapsed / computed * (config.nll_passes * batches - finished)
        print(f'NLL: pass {p + 1}/{config.nll_passes}, batch {i + 1}/{batches}, '
              f'running mean {-np.mean(np.concatenate(values)):.2f}, '
              f'{elapsed:.0f} s elapsed, ETA {eta:.0f} s', flush=True)
    per_image.append(-np.concatenate(values))
  per_image = np.stack(per_image)  # (passes, n)
  per_pass = [float(v) for v in per_image.mean(axis=1)]
  image_means = per_image.mean(axis=0)
  sem = float(np.std(image_means, ddof=1) / np.sqrt(len(image_means))) \
      if len(image_means) > 1 else 0.
  std = float(np.std(per_pass, ddof=1)) if len(per_pass) > 1 else 0.
  return {'nll_mean': float(np.mean(per_pass)), 'nll_sem': sem, 'nll_std': std,
          'nll_per_pass': per_pass, 'nll_batches_resumed': len(done),
          # For paired comparisons of models on the same images (`results.paired_nll`).
          'nll_per_image': [round(float(v), 4) for v in image_means]}


def run_nll(model, workdir, config, test_images, nll_index, binarized=False, chief=True):
  """The NLL of a run (`evaluate_nll` of `model` on `test_images[nll_index]`), resumable.

  The chief keeps its progress in `workdir`'s partial file of this setting
  (`nll_setting_path`): an NLL killed at batch 15 of 20 restarts at batch 15. Workers compute
  the same numbers and keep nothing.
  """
  indices_sha = indices_digest(nll_index)
  identity = {'weights': weights_fingerprint(model), 'indices': indices_sha}
  partial = nll_setting_path(workdir, 'nll_partial', config, len(nll_index), config.seed,
                             {'indices': indices_sha}) if chief else None
  if partial:  # progress of the one-file layout of earlier versions, if it is this NLL's
    _adopt_legacy_partial(os.path.join(workdir, 'nll_partial.jsonl'), partial,
                          _nll_identity(identity, len(nll_index), config.seed, config))
  if config.verbose:
    print(f'NLL ({len(nll_index)} test images, S = {config.nll_samples}, '
          f'{config.nll_passes} pass(es)) ...', flush=True)
  return evaluate_nll(model, test_images[nll_index], config, config.seed,
                      progress=config.verbose > 0, binarized=binarized, partial_path=partial,
                      identity=identity)


def nll_curve(model, workdir, config, test_images, nll_index, history, epochs, binarized=False,
              chief=True):
  """NLL of the weights kept at each of `config.curve_epochs()` up to `epochs` (the curve).

  Each point restores the best weights as of that epoch (`checkpoints/epochs/epoch-NNNN`) into
  `model` and measures the NLL, as `evaluate_nll` does, on the first `nll_curve_images` images
  of the NLL subset (the same images for every model of a protocol, so points pair across
  models). Each point resumes from its own partial file (`nll_curve/epoch-NNNN-<hash>.jsonl`).
  `model` holds its own weights again when this returns.

  Returns:
    A list of `{epoch, best_epoch, train_cpu_minutes, nll_mean, nll_sem, nll_test_images,
    nll_samples, nll_per_image}`, one per kept epoch found, in epoch order.
  """
  cpu_minutes = {row['epoch']: row['cpu_seconds'] / 60. for row in history
                 if isinstance(row.get('cpu_seconds'), (int, float))}
  n = min(config.nll_curve_images, len(nll_index))
  index = nll_subset_indices(len(test_images), dataclasses.replace(config, nll_test_images=n))
  images = test_images[index]
  indices_sha = indices_digest(index)
  curve = []
  evaluated = model.get_weights()  # the run's best weights, which the record describes
  for epoch in config.curve_epochs():
    if epoch > epochs:
      break
    prefix, best_epoch = kept_epoch_checkpoint(workdir, epoch)
    if prefix is None:
      continue  # trained before checkpoints were kept (or not the chief's directory)
    tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    if config.verbose:
      print(f'NLL curve: epoch {epoch} (best weights of epoch {best_epoch}), {n} images.',
            flush=True)
    point_config = dataclasses.replace(config, nll_passes=1)
    identity = {'weights': weights_fingerprint(model), 'indices': indices_sha}
    partial = nll_setting_path(os.path.join(workdir, 'nll_curve'), f'epoch-{epoch:04d}',
                               point_config, len(images), config.seed,
                               {'indices': indices_sha}) if chief else None
    if partial:
      os.makedirs(os.path.dirname(partial), exist_ok=True)
    point = evaluate_nll(model, images, point_config, config.seed,
                         progress=config.verbose > 0, binarized=binarized, partial_path=partial,
                         identity=identity)
    curve.append({'epoch': epoch, 'best_epoch': best_epoch,
                  'train_cpu_minutes': cpu_minutes.get(epoch),
                  'nll_mean': point['nll_mean'], 'nll_sem': point['nll_sem'],
                  'nll_test_images': n, 'nll_samples': config.nll_samples,
                  'nll_per_image': point['nll_per_image']})
  model.set_weights(evaluated)
  return curve


def sample_quality(model, test_images, num_samples, seed):
  """Classifier FID (vs the grey-level test set) and classifier IS of model samples.

  Samples are Bernoulli means `sigmoid(decoder(z))`, `z ~ N(0, I)`. These are our MNIST
  classifier's FID/IS (`lvae_tf.metrics`), not Inception's: compare them with
  `results/metric_reference.md`, not with the paper's numbers.
  """
  from lvae_tf import metrics  # pylint: disable=g-import-not-at-top
  samples = model.sample_images(num_samples, seed=(seed, 3)).numpy()
  reference = test_images.astype(np.float32) / 255.
  is_mean, is_std = metrics.classifier_is(samples)
  return {'classifier_fid': metrics.classifier_fid(samples, reference),
          'classifier_is': is_mean, 'classifier_is_std': is_std,
          'fid_samples': num_samples}
