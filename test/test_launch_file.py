"""The launch file (run only where launch_ros exists) names executables that the package installs."""

import ast
import pathlib

REPO = pathlib.Path(__file__).parents[1]


def console_scripts() -> set:
    tree = ast.parse((REPO / 'setup.py').read_text())
    scripts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ' = ' in node.value:
            scripts.add(node.value.split(' = ')[0])
    return scripts


def launched_executables(path: pathlib.Path) -> set:
    tree = ast.parse(path.read_text())
    names = set()
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, 'id', '') == 'node' and call.args:
            names.add(call.args[0].value)
    return names


def test_every_launched_executable_is_a_console_script():
    launched = launched_executables(REPO / 'launch' / 'spotvlm.launch.py')
    assert launched == {'image_source', 'edge_node', 'cloud_bridge', 'context_fuser'}
    assert launched <= console_scripts()


def test_every_node_entry_point_imports_and_has_main():
    import importlib

    for name in ('image_source', 'edge_node', 'cloud_bridge', 'context_fuser'):
        module = importlib.import_module(f'spotvlm_ros.nodes.{name}')
        assert callable(module.main)
