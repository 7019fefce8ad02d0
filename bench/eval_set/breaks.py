"""What each instance breaks, how a user reports it, and the tests that decide it.

A break is an exact text replacement in one file of the project's released sdist (``old`` must occur there
exactly once), or several (``also``: an issue reporting related problems, for planning into several tasks);
the gold patch undoes them. ``tests`` is the new test file's body (``test_patch``); every
``def test_…`` in it is FAIL_TO_PASS. PASS_TO_PASS: the project's own tests in ``p2p_files`` that pass
both at the base commit and with the gold patch (the first 40 by node id).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Break:
    slug: str
    file: str
    old: str
    new: str
    title: str
    body: str
    tests: str
    also: tuple[tuple[str, str, str], ...] = ()  # more (file, old, new): an issue with related changes

    @property
    def edits(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.file, self.old, self.new), *self.also)


@dataclass(frozen=True)
class Project:
    repo: str  # owner/name (SWE-bench's "repo")
    dist: str  # the PyPI name and version of the sdist
    tests_dir: str  # where the new test files go ("" for the root)
    p2p_files: tuple[str, ...]
    verify: str  # Otto's own checks for the repository (.github/otto.yml)
    breaks: tuple[Break, ...] = field(default_factory=tuple)


HUMANIZE = Project(
    repo="python-humanize/humanize",
    dist="humanize==4.11.0",
    tests_dir="tests",
    p2p_files=("tests/test_number.py", "tests/test_filesize.py", "tests/test_lists.py"),
    verify="PYTHONPATH=src python -m pytest -q -p no:cacheprovider -o filterwarnings= "
    "tests/test_number.py tests/test_filesize.py tests/test_lists.py",
    breaks=(
        Break(
            "ordinal-teens",
            "src/humanize/number.py",
            '    if value % 100 in (11, 12, 13):  # special case\n        return f"{value}{t[0]}"\n',
            "",
            "ordinal() gives 11st, 12nd and 13rd",
            "`humanize.ordinal(11)` returns `'11st'`, `ordinal(12)` returns `'12nd'` and `ordinal(113)` "
            "returns `'113rd'`. In English these are 11th, 12th and 113th.",
            "from humanize import ordinal\n\n\ndef test_teens_take_th():\n    assert [ordinal(n) for n in (11, 12, "
            "13, 111, 112, 113)] == ['11th', '12th', '13th', '111th', '112th', '113th']\n\n\ndef test_others_unchanged"
            "():\n    assert [ordinal(n) for n in (1, 2, 3, 21, 102)] == ['1st', '2nd', '3rd', '21st', '102nd']\n",
        ),
        Break(
            "naturalsize-binary-base",
            "src/humanize/filesize.py",
            "    base = 1024 if (gnu or binary) else 1000\n",
            "    base = 1024 if gnu else 1000\n",
            "naturalsize(binary=True) divides by 1000",
            "With `binary=True` I expect KiB/MiB computed with 1024, but `naturalsize(3000, binary=True)` "
            "gives `'3.0 KiB'` (should be `'2.9 KiB'`) and `naturalsize(10**6, binary=True)` gives "
            "`'1.0 MiB'` instead of `'976.6 KiB'`.",
            "from humanize import naturalsize\n\n\ndef test_binary_uses_1024():\n    assert naturalsize(3000, "
            "binary=True) == '2.9 KiB'\n    assert naturalsize(10**6, binary=True) == '976.6 KiB'\n",
        ),
        Break(
            "natural-list-two",
            "src/humanize/lists.py",
            '        return f"{str(items[0])} and {str(items[1])}"\n',
            '        return f"{str(items[0])}, {str(items[1])}"\n',
            "natural_list with two items has no 'and'",
            "`natural_list(['cats', 'dogs'])` returns `'cats, dogs'`; with three items it says "
            "`'a, b and c'`, so two should read `'cats and dogs'`.",
            "from humanize import natural_list\n\n\ndef test_two_items():\n    assert natural_list(['cats', "
            "'dogs']) == 'cats and dogs'\n",
        ),
        Break(
            "intcomma-negative",
            "src/humanize/number.py",
            '        new = re.sub(r"^(-?\\d+)(\\d{3})", rf"\\g<1>{thousands_sep}\\g<2>", orig)\n',
            '        new = re.sub(r"^(\\d+)(\\d{3})", rf"\\g<1>{thousands_sep}\\g<2>", orig)\n',
            "intcomma ignores negative numbers",
            "`intcomma(-1234567)` returns `'-1234567'` without any separators; positive numbers work "
            "(`'1,234,567'`).",
            "from humanize import intcomma\n\n\ndef test_negative():\n    assert intcomma(-1234567) == "
            "'-1,234,567'\n    assert intcomma(-1234.5) == '-1,234.5'\n",
        ),
        Break(
            "clamp-ceil-token",
            "src/humanize/number.py",
            "        value = ceil\n        token = ceil_token\n",
            "        value = ceil\n        token = floor_token\n",
            "clamp() marks values above ceil with the floor token",
            "`clamp(1.5, format='{:.0%}', ceil=1)` returns `'<100%'`. A value above the ceiling should be "
            "shown as `'>100%'`.",
            "from humanize import clamp\n\n\ndef test_ceil_token():\n    assert clamp(1.5, format='{:.0%}', "
            "ceil=1) == '>100%'\n    assert clamp(1.5, format='{:.0%}', ceil=1, ceil_token='more than ') == "
            "'more than 100%'\n",
        ),
    ),
)

INFLECTION = Project(
    repo="jpvanhal/inflection",
    dist="inflection==0.5.1",
    tests_dir="",
    p2p_files=("test_inflection.py",),
    verify="python -m pytest -q -p no:cacheprovider test_inflection.py",
    breaks=(
        Break(
            "ordinal-13",
            "inflection/__init__.py",
            "    if number % 100 in (11, 12, 13):\n",
            "    if number % 100 in (11, 12):\n",
            "ordinalize(13) is '13rd'",
            "`inflection.ordinalize(13)` gives `'13rd'` and `ordinalize(113)` gives `'113rd'`; 11 and 12 "
            "are fine.",
            "from inflection import ordinalize\n\n\ndef test_thirteen():\n    assert ordinalize(13) == '13th'\n"
            "    assert ordinalize(113) == '113th'\n",
        ),
        Break(
            "humanize-id",
            "inflection/__init__.py",
            '    word = re.sub(r"_id$", "", word)\n',
            "",
            "humanize('author_id') keeps the _id",
            "The docs say `humanize('author_id')` gives `'Author'`, but I get `'Author id'`.",
            "from inflection import humanize\n\n\ndef test_strips_id():\n    assert humanize('author_id') == "
            "'Author'\n",
        ),
        Break(
            "parameterize-trailing",
            "inflection/__init__.py",
            "        string = re.sub(r\"(?i)^{sep}|{sep}$\".format(sep=re_sep), '', string)\n",
            "        string = re.sub(r\"(?i)^{sep}\".format(sep=re_sep), '', string)\n",
            "parameterize leaves a separator at the end",
            "`parameterize('Hello world!')` returns `'hello-world-'`; a trailing separator makes ugly URLs.",
            "from inflection import parameterize\n\n\ndef test_no_trailing_separator():\n    assert "
            "parameterize('Hello world!') == 'hello-world'\n    assert parameterize('Hello world!', '_') == "
            "'hello_world'\n",
        ),
        Break(
            "underscore-acronym",
            "inflection/__init__.py",
            "    word = re.sub(r\"([A-Z]+)([A-Z][a-z])\", r'\\1_\\2', word)\n",
            "",
            "underscore('HTTPServer') gives 'httpserver'",
            "Acronyms are merged with the next word: `underscore('HTTPServer')` returns `'httpserver'` "
            "instead of `'http_server'`.",
            "from inflection import underscore\n\n\ndef test_acronym():\n    assert underscore('HTTPServer') == "
            "'http_server'\n",
        ),
        Break(
            "dasherize-all",
            "inflection/__init__.py",
            "    return word.replace('_', '-')\n",
            "    return word.replace('_', '-', 1)\n",
            "dasherize only replaces the first underscore",
            "`dasherize('puni_puni_chan')` returns `'puni-puni_chan'`.",
            "from inflection import dasherize\n\n\ndef test_every_underscore():\n    assert dasherize('puni_puni_chan')"
            " == 'puni-puni-chan'\n",
        ),
        Break(
            "url-slugs",
            "inflection/__init__.py",
            "        string = re.sub(r\"(?i)^{sep}|{sep}$\".format(sep=re_sep), '', string)\n",
            "        string = re.sub(r\"(?i)^{sep}\".format(sep=re_sep), '', string)\n",
            "URL slugs come out wrong (parameterize and dasherize)",
            "Two problems building URL slugs:\n\n1. `parameterize('Hello world!')` returns `'hello-world-'` "
            "(a trailing separator).\n2. `dasherize('puni_puni_chan')` returns `'puni-puni_chan'`: only the "
            "first underscore becomes a dash.",
            "from inflection import dasherize, parameterize\n\n\ndef test_parameterize_no_trailing_separator():"
            "\n    assert parameterize('Hello world!') == 'hello-world'\n\n\ndef test_dasherize_every_underscore():"
            "\n    assert dasherize('puni_puni_chan') == 'puni-puni-chan'\n",
            also=(
                (
                    "inflection/__init__.py",
                    "    return word.replace('_', '-')\n",
                    "    return word.replace('_', '-', 1)\n",
                ),
            ),
        ),
    ),
)

MORE_ITERTOOLS = Project(
    repo="more-itertools/more-itertools",
    dist="more-itertools==10.5.0",
    tests_dir="tests",
    p2p_files=("tests/test_more.py",),
    verify="python -m pytest -q -p no:cacheprovider tests",
    breaks=(
        Break(
            "chunked-strict",
            "more_itertools/more.py",
            "                if len(chunk) != n:\n",
            "                if len(chunk) > n:\n",
            "chunked(strict=True) doesn't raise on a short last chunk",
            "`list(chunked(range(5), 2, strict=True))` returns `[[0, 1], [2, 3], [4]]`. The docs say strict "
            "mode raises `ValueError` when the iterable is not divisible by n.",
            "import pytest\n\nfrom more_itertools import chunked\n\n\ndef test_strict_raises():\n    with "
            "pytest.raises(ValueError):\n        list(chunked(range(5), 2, strict=True))\n\n\ndef test_strict_ok():"
            "\n    assert list(chunked(range(4), 2, strict=True)) == [[0, 1], [2, 3]]\n",
        ),
        Break(
            "always-iterable-str",
            "more_itertools/more.py",
            "    if (base_type is not None) and isinstance(obj, base_type):\n        return iter((obj,))\n\n",
            "",
            "always_iterable splits strings into characters",
            "`list(always_iterable('foo'))` gives `['f', 'o', 'o']`; strings should be treated as one item "
            "(`['foo']`), as documented.",
            "from more_itertools import always_iterable\n\n\ndef test_string_is_one_item():\n    assert "
            "list(always_iterable('foo')) == ['foo']\n    assert list(always_iterable(b'x')) == [b'x']\n",
        ),
        Break(
            "last-default-empty",
            "more_itertools/more.py",
            "    except (IndexError, TypeError, StopIteration):\n",
            "    except (TypeError, StopIteration):\n",
            "last([], default) raises IndexError",
            "`last([], None)` raises `IndexError` instead of returning the default.",
            "from more_itertools import last\n\n\ndef test_default_on_empty_list():\n    assert last([], None) is "
            "None\n    assert last((), 'x') == 'x'\n",
        ),
        Break(
            "split-at-keep",
            "more_itertools/more.py",
            "            if keep_separator:\n                yield [item]\n            if maxsplit == 1:\n",
            "            if maxsplit == 1:\n",
            "split_at(keep_separator=True) drops the separators",
            "`list(split_at('abXcd', lambda c: c == 'X', keep_separator=True))` gives "
            "`[['a', 'b'], ['c', 'd']]`; the separator should be kept as its own list.",
            "from more_itertools import split_at\n\n\ndef test_keep_separator():\n    assert list(split_at('abXcd', "
            "lambda c: c == 'X', keep_separator=True)) == [['a', 'b'], ['X'], ['c', 'd']]\n",
        ),
        Break(
            "split-at-maxsplit",
            "more_itertools/more.py",
            "            if keep_separator:\n                yield [item]\n            if maxsplit == 1:\n",
            "            if keep_separator:\n                yield [item]\n            if maxsplit == 0:\n",
            "split_at(maxsplit=1) splits more than once",
            "`list(split_at('aXbXc', lambda c: c == 'X', maxsplit=1))` returns `[['a'], ['b'], ['c']]` "
            "instead of `[['a'], ['b', 'X', 'c']]`.",
            "from more_itertools import split_at\n\n\ndef test_maxsplit_one():\n    assert list(split_at('aXbXc', "
            "lambda c: c == 'X', maxsplit=1)) == [['a'], ['b', 'X', 'c']]\n",
        ),
        Break(
            "split-at-both",
            "more_itertools/more.py",
            "            if keep_separator:\n                yield [item]\n            if maxsplit == 1:\n",
            "            if maxsplit == 0:\n",
            "split_at ignores keep_separator and maxsplit",
            "Both options of `split_at` seem broken:\n\n- `list(split_at('abXcd', lambda c: c == 'X', "
            "keep_separator=True))` gives `[['a', 'b'], ['c', 'd']]` (the separator is dropped);\n- "
            "`list(split_at('aXbXc', lambda c: c == 'X', maxsplit=1))` gives `[['a'], ['b'], ['c']]`.",
            "from more_itertools import split_at\n\n\ndef test_keep_separator():\n    assert list(split_at('abXcd', "
            "lambda c: c == 'X', keep_separator=True)) == [['a', 'b'], ['X'], ['c', 'd']]\n\n\ndef test_maxsplit_one"
            "():\n    assert list(split_at('aXbXc', lambda c: c == 'X', maxsplit=1)) == [['a'], ['b', 'X', 'c']]\n",
        ),
    ),
)

TOOLZ = Project(
    repo="pytoolz/toolz",
    dist="toolz==1.0.0",
    tests_dir="toolz/tests",
    p2p_files=("toolz/tests/test_itertoolz.py",),
    verify="python -m pytest -q -p no:cacheprovider toolz/tests",
    breaks=(
        Break(
            "isdistinct-sequence",
            "toolz/itertoolz.py",
            "        return len(seq) == len(set(seq))\n",
            "        return len(seq) >= len(set(seq))\n",
            "isdistinct([1, 2, 1]) is True",
            "`toolz.isdistinct([1, 2, 1])` returns `True`. With an iterator (`iter([1, 2, 1])`) it correctly "
            "returns `False`.",
            "from toolz import isdistinct\n\n\ndef test_repeated_items():\n    assert isdistinct([1, 2, 1]) is "
            "False\n    assert isdistinct('abc') is True\n",
        ),
        Break(
            "frequencies-count",
            "toolz/itertoolz.py",
            "        d[item] += 1\n",
            "        d[item] = 1\n",
            "frequencies() counts every item once",
            "`frequencies('aab')` returns `{'a': 1, 'b': 1}` instead of `{'a': 2, 'b': 1}`.",
            "from toolz import frequencies\n\n\ndef test_counts():\n    assert frequencies('aab') == {'a': 2, "
            "'b': 1}\n",
        ),
        Break(
            "take-nth-start",
            "toolz/itertoolz.py",
            "    return itertools.islice(seq, 0, None, n)\n",
            "    return itertools.islice(seq, 1, None, n)\n",
            "take_nth skips the first element",
            "`list(take_nth(2, [10, 20, 30, 40]))` gives `[20, 40]`; the docs say it starts with the first "
            "element: `[10, 30]`.",
            "from toolz import take_nth\n\n\ndef test_starts_at_first():\n    assert list(take_nth(2, [10, 20, 30,"
            " 40])) == [10, 30]\n",
        ),
        Break(
            "get-single-list",
            "toolz/itertoolz.py",
            "                elif ind:\n                    return seq[ind[0]],\n",
            "                elif ind:\n                    return seq[ind[0]]\n",
            "get([1], seq) returns an item, not a tuple",
            "`get([1], 'abc')` returns `'b'`, but a list of indices should always give a tuple: `('b',)` "
            "(as `get([0, 1], 'abc')` gives `('a', 'b')`).",
            "from toolz import get\n\n\ndef test_single_index_list_gives_tuple():\n    assert get([1], 'abc') == "
            "('b',)\n",
        ),
        Break(
            "get-default-index",
            "toolz/itertoolz.py",
            "    except (KeyError, IndexError):\n        return default\n",
            "    except KeyError:\n        return default\n",
            "get() with a default raises IndexError for lists",
            "`get([0, 5], [1, 2], default=None)` raises `IndexError`; I expected `(1, None)`. With dicts the "
            "default works.",
            "from toolz import get\n\n\ndef test_default_for_missing_index():\n    assert get([0, 5], [1, 2], "
            "default=None) == (1, None)\n",
        ),
        Break(
            "get-lists",
            "toolz/itertoolz.py",
            "                elif ind:\n                    return seq[ind[0]],\n",
            "                elif ind:\n                    return seq[ind[0]]\n",
            "get() with a list of indices is inconsistent",
            "Two things with `toolz.get` and a list of indices:\n\n- `get([1], 'abc')` returns `'b'` where "
            "`get([0, 1], 'abc')` returns a tuple; I expected `('b',)`.\n- `get([0, 5], [1, 2], default=None)` "
            "raises `IndexError` instead of giving `(1, None)`.",
            "from toolz import get\n\n\ndef test_single_index_list_gives_tuple():\n    assert get([1], 'abc') == "
            "('b',)\n\n\ndef test_default_for_missing_index():\n    assert get([0, 5], [1, 2], default=None) == "
            "(1, None)\n",
            also=(
                (
                    "toolz/itertoolz.py",
                    "    except (KeyError, IndexError):\n        return default\n",
                    "    except KeyError:\n        return default\n",
                ),
            ),
        ),
    ),
)

PROJECTS = (HUMANIZE, INFLECTION, MORE_ITERTOOLS, TOOLZ)
