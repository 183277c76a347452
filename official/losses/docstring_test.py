"""Runs the `>>>` examples of the losses' docstrings: every number they show is computed."""

import doctest

from absl.testing import absltest

from official.losses import heads
from official.losses import hyperparameters
from official.losses import normalization
from official.losses import objectives
from official.losses import registry

_MODULES = (heads, hyperparameters, normalization, objectives, registry)


class DocstringTest(absltest.TestCase):

  def test_examples_run_and_give_the_numbers_shown(self):
    failed = attempted = 0
    for module in _MODULES:
      result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
      failed += result.failed
      attempted += result.attempted
    self.assertEqual(failed, 0)
    # One example per loss class at least (nine objectives) and the registry's `get`.
    self.assertGreaterEqual(attempted, 9 * 3)

  def test_every_loss_class_has_an_example(self):
    finder = doctest.DocTestFinder()
    for name in registry.NAMES:
      loss_class = type(registry.get_objective(name).loss)
      examples = [e for t in finder.find(loss_class, loss_class.__name__,
                                         globs={}) if t.name == loss_class.__name__
                  for e in t.examples]
      self.assertNotEmpty(examples, msg=f"{loss_class.__name__} has no >>> example")


if __name__ == "__main__":
  absltest.main()
