"""Parameters as data: every field describes itself, and docs/parameters.md is written from them."""

import dataclasses
import pathlib

import pytest

from spotvlm_ros.core.settings import description
from spotvlm_ros.evaluation.params import node_params
from spotvlm_ros.nodes.settings import NODE_PARAMETERS
from spotvlm_ros.params_doc import markdown, parameter_rows
from spotvlm_ros.run import CONFIG

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('node', sorted(NODE_PARAMETERS))
def test_every_parameter_has_a_description(node):
    rows = parameter_rows(node)
    assert rows
    assert [name for name, _, text, _ in rows if not text.strip()] == []
    names = [name for name, *_ in rows]
    assert len(names) == len(set(names))  # no two groups declare the same name


def test_the_committed_parameters_page_is_up_to_date():
    committed = (ROOT / 'docs' / 'parameters.md').read_text()
    assert committed == markdown(node_params(CONFIG)), (
        'docs/parameters.md is stale: run `spotvlm params-doc > docs/parameters.md`')


def test_the_page_shows_defaults_descriptions_and_the_params_file():
    page = markdown({'edge_node': {'focus.token_budget': 96}})
    budget = next(line for line in page.splitlines() if line.startswith('| `focus.token_budget`'))
    from spotvlm_ros.core.focus import FocusConfig

    field = next(f for f in dataclasses.fields(FocusConfig) if f.name == 'token_budget')
    assert budget == f'| `focus.token_budget` | `256` | `96` | {description(field)} |'


def test_every_parameter_in_the_params_file_is_a_declared_one():
    for node, values in node_params(CONFIG).items():
        declared = {name for name, *_ in parameter_rows(node)}
        assert set(values) <= declared, f'{node}: {set(values) - declared} are not declared'
