"""The README is a front door: small, its two commands first, and every link it gives resolves."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text()


def test_the_readme_stays_small():
    assert len(README.encode()) <= 20_000


def test_the_readme_opens_with_its_two_commands():
    first_block = README.split('```bash\n', 1)[1].split('```', 1)[0]
    assert [line.split('#')[0].strip() for line in first_block.splitlines()] == [
        'make demo', 'make test']
    assert README.index('make demo') < README.index('## ')


def test_every_local_link_in_the_readme_and_docs_resolves():
    pages = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
    broken = []
    for page in pages:
        for target in re.findall(r'\]\(([^)#\s]+)', page.read_text()):
            if not target.startswith(('http://', 'https://')) and \
                    not (page.parent / target).exists():
                broken.append(f'{page.relative_to(ROOT)}: {target}')
    assert broken == []
