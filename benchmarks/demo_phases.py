r"""Where the demo study's time goes: wall seconds per phase of `experiments/reproduce`.

Runs the study (default: the quick demo) in a fresh workdir through official.study.driver; a
step lasts from its "[i/N] <kind> ..." progress line to the next (the last one, which writes the
report, to the end of the run). Phases are the step kinds plus start-up (imports, up to the
first step).

  python -m benchmarks.demo_phases                 # the quick demo, about 2 minutes
  python -m benchmarks.demo_phases --noquick       # the default demo study (15 minutes)
"""

import collections
import re
import tempfile
import time

from absl import flags

STARTED = time.perf_counter()

from official.core import cli  # pylint: disable=g-import-not-at-top
from official.core import config as config_lib  # pylint: disable=g-import-not-at-top

_EXPERIMENT = flags.DEFINE_string("experiment", "demo", "Study preset.")
_QUICK = flags.DEFINE_bool("quick", True, "Time the quick demo (study_demo(quick=True)).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Study workdir (default: a new temp folder).")

_STEP = re.compile(r"^\[\d+/\d+\] (\S+)")


def phase_seconds(lines: list[tuple[float, str]], end: float) -> dict[str, list[float]]:
  """kind -> durations (s) of its steps, from (time, driver line) pairs and the end time."""
  starts = [(t, m.group(1)) for t, line in lines if (m := _STEP.match(line))]
  out = collections.defaultdict(list)
  for (t, kind), (t_next, _) in zip(starts, starts[1:] + [(end, "")]):
    out[kind].append(t_next - t)
  return dict(out)


def main(argv):
  del argv
  from official.study import driver  # pylint: disable=g-import-not-at-top
  study = config_lib.get_study(_EXPERIMENT.value, quick=_QUICK.value)
  workdir = _WORKDIR.value or tempfile.mkdtemp(prefix="demo_phases_")
  lines = []
  driver.run(study, workdir, log=lambda line: lines.append((time.perf_counter(), line)))
  end = time.perf_counter()
  phases = phase_seconds(lines, end)
  first = min((t for t, line in lines if _STEP.match(line)), default=end)
  print(f"study {study.experiment}: {len(study.runs())} runs, workdir {workdir}")
  print(f"{'phase':<16}{'steps':>6}{'total s':>10}{'mean s':>9}")
  print(f"{'start-up':<16}{1:>6}{first - STARTED:>10.1f}{first - STARTED:>9.1f}")
  for kind, seconds in phases.items():
    print(f"{kind:<16}{len(seconds):>6}{sum(seconds):>10.1f}{sum(seconds) / len(seconds):>9.1f}")
  print(f"{'total':<16}{'':>6}{end - STARTED:>10.1f}")


if __name__ == "__main__":
  cli.run(main)
