"""The `spotvlm` command: thin verbs over the package's modules."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Optional, Sequence

# verb -> (module with main(argv) -> int, one-line help). Imported only when the verb runs,
# so `spotvlm --help` stays fast and a verb's heavy imports (torch, rclpy) stay its own.
VERBS: dict[str, tuple[str, str]] = {
    'doctor': ('spotvlm_ros.doctor', 'check the install: interfaces, ament index, a message across two processes'),
    'demo': ('spotvlm_ros.demo', 'the whole pipeline offline on a generated bag, with the local cloud'),
    'run': ('spotvlm_ros.run', 'start the nodes (and the local cloud) as processes, like the launch file'),
    'cloud-server': ('spotvlm_ros.cloud.server', 'serve a local checkpoint as an OpenAI-compatible endpoint'),
    'make-tiny-model': ('spotvlm_ros.models.tiny', 'build a tiny random-weight Qwen2.5-VL checkpoint offline'),
    'make-bag': ('spotvlm_ros.scenes.make_bag', 'write a synthetic driving sequence with ground truth as an MCAP bag'),
    'train-model': ('spotvlm_ros.training.train', 'train the default edge or cloud model on generated scenes (CPU)'),
    'build-replies': ('spotvlm_ros.training.replies', "the models' own replies on whole training drives, for edge training"),
    'eval-scenes': ('spotvlm_ros.training.evaluate', 'accuracy on held-out scenes per task family and strategy'),
    'eval': ('spotvlm_ros.evaluation.main', 'replay a bag under cloud-latency traces and score every strategy'),
    'fit-edge-cost': ('spotvlm_ros.evaluation.fit_edge_cost', "fit the offline edge cost to measured answers' tokens and images"),
    'calibrate': ('spotvlm_ros.evaluation.calibrate', "fit auto's table of expected accuracy on validation drives"),
    'ask': ('spotvlm_ros.ask', 'ask the running edge node a question (Ask action), streaming its answer'),
    'watch': ('spotvlm_ros.watch', 'print answers, cloud contexts and diagnostics as they arrive'),
    'trace-from-bag': ('spotvlm_ros.trace_from_bag', "write a bag's recorded cloud round trips as a latency-trace CSV"),
    'export-onnx': ('spotvlm_ros.models.onnx_export', 'export a checkpoint to ONNX for the onnx backend'),
    'params-doc': ('spotvlm_ros.params_doc', "write docs/parameters.md from the nodes' parameter dataclasses"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each verb parses its own arguments."""
    parser = argparse.ArgumentParser(prog='spotvlm', description=__doc__)
    parser.add_argument('verb', choices=sorted(VERBS), help='what to do')
    parser.add_argument('args', nargs=argparse.REMAINDER, help="the verb's own arguments")
    parser.epilog = '\n'.join(f'  {v:14s} {h}' for v, (_, h) in sorted(VERBS.items()))
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def verb_main(verb: str) -> Callable[[Sequence[str]], int]:
    """The main(argv) of a verb's module."""
    return importlib.import_module(VERBS[verb][0]).main


def _one_line_error(parser: argparse.ArgumentParser, message: str) -> None:
    """argparse's error without the usage block: a bad input is one line, exit code 2."""
    parser.exit(2, f'{parser.prog}: {message} (see {parser.prog} --help)\n')


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Every verb builds its own parser; in this command they all report errors in one line.
    argparse.ArgumentParser.error = _one_line_error
    args = build_parser().parse_args(argv)
    try:
        return verb_main(args.verb)(args.args) or 0
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as err:
        # Inputs a verb did not check itself (a path, a file's contents): one line, not a
        # traceback. Programming errors of other types still show theirs.
        print(f'spotvlm {args.verb}: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
