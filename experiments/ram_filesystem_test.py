"""The binaries on a non-local filesystem: `ram://` (TensorFlow's in-memory filesystem, the
offline stand-in for gs://) gives the same results as local disk.

`ram://` lives inside one process, so each binary runs in a child process of its own
(`--child`): it copies its inputs from local disk into `ram://`, runs the binary's main (as
`python -m experiments.<binary>` would) with every model directory, output folder and workdir
on `ram://`, and copies the outputs back to local disk for comparison with a run of the same
binary on local paths. The child's working folder must stay empty (no folder named `ram:`).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl.testing import absltest

from experiments import reproduce_test

ROOT = reproduce_test.ROOT
_DROPPED = ("second", "time", "duration", "wall", "images_per_second")


def _run(args, cwd):
  return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=reproduce_test._env(),
                        capture_output=True, text=True, timeout=900)


def _json_files(root, paths):
  """Every JSON file under `root` (relative name -> content), timings dropped and the run's
  own paths (`paths`: local or ram:// spellings) replaced by "<path>"."""
  contents = {}
  for directory, _, files in os.walk(root):
    for name in files:
      if name.endswith(".json") and not name.startswith("."):
        full = os.path.join(directory, name)
        with open(full) as f:
          contents[os.path.relpath(full, root)] = _normalise(json.load(f), paths)
  return contents


def _normalise(value, paths):
  if isinstance(value, dict):
    return {k: _normalise(v, paths) for k, v in value.items()
            if not any(word in k for word in _DROPPED)}
  if isinstance(value, list):
    return [_normalise(v, paths) for v in value]
  if isinstance(value, str):
    for path in sorted(paths, key=len, reverse=True):
      value = value.replace(path, "<path>")
  return value


class RamFilesystemTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    os.makedirs(absltest.get_default_test_tmpdir(), exist_ok=True)
    cls.base = tempfile.mkdtemp(dir=absltest.get_default_test_tmpdir())
    cls.data_dir = os.path.join(cls.base, "tfds")

  def _both(self, module, local_flags, ram_flags, copy_in=(), copy_out=()):
    """Runs `module` on local paths and on ram:// ones; returns the child's output."""
    local = _run([f"experiments.{module}", *local_flags], ROOT)
    self.assertEqual(local.returncode, 0, local.stderr[-3000:])
    cwd = tempfile.mkdtemp(dir=self.base)
    spec = json.dumps({"in": list(copy_in), "out": list(copy_out)})
    remote = _run(["experiments.ram_filesystem_test", "--child", module, spec, *ram_flags], cwd)
    self.assertEqual(remote.returncode, 0, remote.stderr[-3000:])
    self.assertEqual(os.listdir(cwd), [])
    return remote

  def _model_dirs(self, count):
    """Tiny training model_dirs on local disk (relearn_head_test's untrained ResNet)."""
    paths = [os.path.join(self.base, f"model{i}") for i in range(count)]
    code = ("import sys; from official.evaluation import relearn_head_test as t; "
            "[t.make_model_dir(p, seed=i) for i, p in enumerate(sys.argv[1:])]")
    result = subprocess.run([sys.executable, "-c", code, *paths], cwd=ROOT,
                            env=reproduce_test._env(),
                            capture_output=True, text=True, timeout=600)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    return paths

  def test_train(self):
    common = ["--loss=softmax", "--train_epochs=1", f"--data_dir={self.data_dir}",
              "--params_override=data.train_examples=256"]
    local_dir = os.path.join(self.base, "train_local")
    copied = os.path.join(self.base, "train_ram")
    self._both("train", [f"--model_dir={local_dir}", *common],
               ["--model_dir=ram://runs/x", *common], copy_out=[["ram://runs/x", copied]])
    paths = [local_dir, "ram://runs/x"]
    expected = _json_files(local_dir, paths)
    self.assertIn("metrics.json", expected)
    self.assertEqual(_json_files(copied, paths), expected)
    for name in ("saved_model.pb", os.path.join("variables", "variables.index")):
      self.assertTrue(os.path.exists(os.path.join(copied, "export", "saved_model", name)))

  def test_linear_probe_and_knn(self):
    (model,) = self._model_dirs(1)
    for module, extra in (("linear_probe", ["--l2_grid=1e-2,1,100", "--max_iterations=100"]),
                          ("knn", [])):
      local_model = os.path.join(self.base, f"{module}_local")
      shutil.copytree(model, local_model)
      copied = os.path.join(self.base, f"{module}_ram")
      flags = ["--datasets=demo_size/small", f"--data_dir={self.data_dir}", *extra]
      self._both(module, [f"--model={local_model}", *flags], ["--model=ram://m", *flags],
                 copy_in=[[model, "ram://m"]], copy_out=[["ram://m", copied]])
      paths = [local_model, "ram://m"]
      expected = _json_files(os.path.join(local_model, "transfer"), paths)
      self.assertNotEmpty(expected, module)
      self.assertEqual(_json_files(os.path.join(copied, "transfer"), paths), expected, module)

  def test_analyze(self):
    models = self._model_dirs(2)
    local_out = os.path.join(self.base, "analysis_local")
    copied = os.path.join(self.base, "analysis_ram")
    flags = ["demo_pretrain/small", f"--data_dir={self.data_dir}", "--max_examples=64"]
    self._both("analyze", [*models, *flags, f"--output_dir={local_out}"],
               ["ram://a", "ram://b", *flags, "--output_dir=ram://analysis"],
               copy_in=[[models[0], "ram://a"], [models[1], "ram://b"]],
               copy_out=[["ram://analysis", copied]])
    paths = [local_out, "ram://analysis", *models, "ram://a", "ram://b"]
    expected = _json_files(local_out, paths)
    self.assertIn("analysis.json", expected)
    self.assertEqual(_json_files(copied, paths), expected)

  def test_reproduce_quick(self):
    from experiments import reproduce_test  # pylint: disable=g-import-not-at-top
    local = os.path.join(self.base, "study_local")
    copied = os.path.join(self.base, "study_ram")
    flags = [f"--data_dir={self.data_dir}", *reproduce_test.STUDY_FLAGS]
    self._both("reproduce", [f"--workdir={local}", *flags], ["--workdir=ram://study", *flags],
               copy_out=[["ram://study", copied]])
    self.assertEqual(reproduce_test._results_without_timings(copied),
                     reproduce_test._results_without_timings(local))
    with open(os.path.join(local, "report", "report.md")) as f:
      expected = f.read().replace(local, "<workdir>")
    with open(os.path.join(copied, "report", "report.md")) as f:
      self.assertEqual(f.read().replace("ram://study", "<workdir>"), expected)


def _child(module_name, spec, flag_args):
  """Copies inputs into ram://, runs experiments.<module_name> there, copies outputs out."""
  import importlib  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from official.core import cli  # pylint: disable=g-import-not-at-top
  from official.core import io  # pylint: disable=g-import-not-at-top

  def copy_tree(source, target):
    for relative in io.walk_files(source):
      destination = io.join(target, *relative.split("/"))
      io.makedirs(io.dirname(destination))
      tf.io.gfile.copy(io.join(source, *relative.split("/")), destination, overwrite=True)

  module = importlib.import_module(f"experiments.{module_name}")
  spec = json.loads(spec)
  for source, target in spec["in"]:
    copy_tree(source, target)
  sys.argv = [module_name, *flag_args]
  code = 0
  try:
    cli.run(module.main)
  except SystemExit as e:
    code = e.code or 0
  for source, target in spec["out"]:
    copy_tree(source, target)
  sys.exit(code)


if __name__ == "__main__":
  if "--child" in sys.argv:
    index = sys.argv.index("--child")
    _child(sys.argv[index + 1], sys.argv[index + 2], sys.argv[index + 3:])
  else:
    absltest.main()
