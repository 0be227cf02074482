"""Baseline predictors that give every report a floor: `noop` (never edits) and `propagate` (finish a rename).

`propagate` reads the latest edit-history event, finds the identifiers it replaced (X -> Y, by a
token-level diff of the changed lines) and applies the same replacement to the remaining
whole-identifier occurrences of X inside the editable region. When X no longer occurs anywhere but
X and Y differ only in one sub-word (snake_case / camelCase part) — a partial rename such as
`test_session_cookie_httponly` -> `test_session_cookie_secur` — that sub-word is replaced wherever it
is a whole sub-word of an identifier or a whole word (`SESSION_COOKIE_HTTPONLY` -> `SESSION_COOKIE_SECUR`,
`"httponly"` -> `"secur"`), keeping each occurrence's case style. A name the edit writes again as
often as it removed it was not renamed (`held = f(x)` -> `stage = f(x)` + `held = stage.g()`: the user
introduced a new name beside the old one), so nothing is propagated for it. That sub-word step is more
speculative, so it stays inside the block the user edited (the edited line's definition or enclosing
block, found by indentation). What the user has typed so far is propagated as is: a rename still
being typed gives a partial (but usually closer) answer.
"""

from __future__ import annotations

import difflib
import keyword
import re
from dataclasses import dataclass, field

from nextedit import patch as patchlib
from nextedit.predictors.base import Predictor
from nextedit.record import Example, Prediction

_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")
_WORD_BOUNDARY = r"(?<!\w){}(?!\w)"
_SUBWORD = re.compile(r"[A-Z]{2,}(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^\W\d_]+")

# Words never propagated: renaming a keyword is not a rename (Python's list plus common ones elsewhere).
_KEYWORDS = frozenset(keyword.kwlist) | frozenset(
    [
        "if", "else", "elif", "for", "while", "do", "return", "let", "const", "var", "fn",
        "func", "function", "def", "class", "struct", "enum", "impl", "trait", "pub", "mut",
        "use", "mod", "async", "await", "true", "false", "null", "nil", "none", "self", "this",
        "super", "new", "in", "of", "import", "from", "export", "default", "type", "interface",
        "match", "case", "switch", "break", "continue", "try", "catch", "throw", "static",
        "public", "private", "protected", "void", "int", "bool", "string", "str", "final",
        "package", "go", "defer", "select", "chan", "map", "where", "as", "is", "not", "and",
        "or", "yield", "with", "lambda",
    ]
)
MIN_SUBWORD_LEN = 3


@dataclass(frozen=True)
class Replacement:
    """One identifier replacement seen in the latest edit: `old` became `new`."""

    old: str
    new: str
    #: The edited line (new side, no newline) and its 1-based file line: where the rename happened.
    line: str | None = field(default=None, compare=False)
    file_line: int | None = field(default=None, compare=False)


def _is_identifier(token: str) -> bool:
    return bool(token) and (token[0].isalpha() or token[0] == "_") and token.replace("_", "a").isalnum()


@dataclass
class _Block:
    """One run of consecutive -/+ lines: old text, new lines, and the file line of the first new line."""

    old: str
    new_lines: list[str]
    new_start: int

    @property
    def new(self) -> str:
        return "".join(self.new_lines)


def _change_blocks(diff: str) -> list[_Block]:
    """Every run of consecutive -/+ lines in a unified diff."""
    blocks: list[_Block] = []
    for file_patch in patchlib.parse(diff):
        for hunk in file_patch.hunks:
            old: list[str] = []
            new: list[str] = []
            row = hunk.new_start  # file line of the next new-side line
            start = row
            for line in [*hunk.lines, " "]:
                sign = line[:1]
                if sign == "\\":
                    continue
                if sign in "-+" and not (old or new):
                    start = row
                if sign == "-":
                    old.append(line[1:])
                elif sign == "+":
                    new.append(line[1:])
                    row += 1
                else:
                    if old or new:
                        blocks.append(_Block("".join(old), new, start))
                        old, new = [], []
                    row += 1
    return blocks


def _still_written(blocks: list[_Block], name: str) -> bool:
    """Whether the edit's new lines hold `name` (a whole word) as often as its old lines did."""
    word = re.compile(_WORD_BOUNDARY.format(re.escape(name)))
    removed = sum(len(word.findall(block.old)) for block in blocks)
    return sum(len(word.findall(block.new)) for block in blocks) >= removed


def replacements_in_edit(diff: str) -> list[Replacement]:
    """Identifiers the edit replaced one-for-one (token-level diff of each changed block).

    A name replaced by two different names in the same edit is ambiguous and left out; so is a name
    the edit still writes as often as before (a new name introduced beside it, not a rename);
    keywords and numbers are never replacements; insertions and deletions are not replacements.
    """
    seen: dict[str, set[str]] = {}
    order: list[str] = []
    anchors: dict[str, tuple[str, int]] = {}
    blocks = _change_blocks(diff)
    for block in blocks:
        old_tokens = _TOKEN.findall(block.old)
        new_tokens = _TOKEN.findall(block.new)
        matcher = difflib.SequenceMatcher(None, old_tokens, new_tokens, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op != "replace":
                continue
            olds = [t for t in old_tokens[i1:i2] if not t.isspace()]
            news = [t for t in new_tokens[j1:j2] if not t.isspace()]
            if len(olds) != 1 or len(news) != 1:
                continue
            x, y = olds[0], news[0]
            if x == y or not (_is_identifier(x) and _is_identifier(y)) or x in _KEYWORDS or y in _KEYWORDS:
                continue
            if x not in seen:
                order.append(x)
                where = re.compile(_WORD_BOUNDARY.format(re.escape(y)))
                for k, line in enumerate(block.new_lines):
                    if where.search(line):
                        anchors[x] = (line.rstrip("\r\n"), block.new_start + k)
                        break
            seen.setdefault(x, set()).add(y)
    out = []
    for x in order:
        if len(seen[x]) == 1 and not _still_written(blocks, x):
            line, file_line = anchors.get(x, (None, None))
            out.append(Replacement(x, next(iter(seen[x])), line, file_line))
    return out


def _subwords(identifier: str) -> list[re.Match[str]]:
    return list(_SUBWORD.finditer(identifier))


def changed_subword(rep: Replacement) -> Replacement | None:
    """The single sub-word that differs between `old` and `new` (same prefix and suffix parts), if any."""
    a, b = _subwords(rep.old), _subwords(rep.new)
    if not a or not b:
        return None
    pre = 0
    while pre < min(len(a), len(b)) - 1 and a[pre].group().lower() == b[pre].group().lower():
        pre += 1
    suf = 0
    while (suf < min(len(a), len(b)) - pre - 1
           and a[-1 - suf].group().lower() == b[-1 - suf].group().lower()):
        suf += 1
    if len(a) - pre - suf != 1 or len(b) - pre - suf != 1 or (pre == 0 and suf == 0):
        return None
    x, y = a[pre].group(), b[pre].group()
    if len(x) < MIN_SUBWORD_LEN or not x.isalpha() or x.lower() in _KEYWORDS or x.lower() == y.lower():
        return None
    # The rest of the identifier must be unchanged, separators included.
    if rep.old[: a[pre].start()] != rep.new[: b[pre].start()] or rep.old[a[pre].end():] != rep.new[b[pre].end():]:
        return None
    return Replacement(x, y)


def _match_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word[:1].lower() + word[1:]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_end(lines: list[str], head: int) -> int:
    """Last row of the block opened by `head`: deeper-indented rows, plus a closing bracket line."""
    level, end = _indent(lines[head]), head
    for j in range(head + 1, len(lines)):
        if not lines[j].strip():
            continue
        if _indent(lines[j]) > level:
            end = j
            continue
        if lines[j].lstrip()[:1] in ")]}" or lines[j].strip() == "end":
            end = j
        break
    return end


def edit_scope(lines: list[str], row: int) -> tuple[int, int]:
    """Rows (inclusive) of the block around an edited row: the block it opens, else its enclosing one."""
    nxt = next((j for j in range(row + 1, len(lines)) if lines[j].strip()), None)
    if nxt is not None and _indent(lines[nxt]) > _indent(lines[row]):
        return row, _block_end(lines, row)
    level = _indent(lines[row])
    head = next((j for j in range(row - 1, -1, -1) if lines[j].strip() and _indent(lines[j]) < level), None)
    if head is None:
        return 0, len(lines) - 1
    return head, _block_end(lines, head)


def _anchor_row(lines: list[str], rep: Replacement, first_line: int) -> int | None:
    """Row of `lines` holding the edited line (nearest to the diff's line number), or None."""
    if rep.line is None:
        return None
    target = rep.line.strip()
    rows = [i for i, line in enumerate(lines) if line.strip() == target]
    if not rows:
        return None
    hint = (rep.file_line or 1) - 1 - first_line
    return min(rows, key=lambda i: (abs(i - hint), i))


def _replace_subword(text: str, part: Replacement) -> str:
    target = part.old.lower()

    def fix_identifier(m: re.Match[str]) -> str:
        ident = m.group()
        pieces, last = [], 0
        for sub in _subwords(ident):
            if sub.group().lower() == target:
                pieces += [ident[last:sub.start()], _match_case(sub.group(), part.new)]
                last = sub.end()
        return "".join(pieces) + ident[last:] if pieces else ident

    return re.sub(r"\w+", fix_identifier, text)


def propagate_text(text: str, replacements: list[Replacement], *, first_line: int = 0) -> str:
    """`text` with every replacement propagated: whole identifiers anywhere in `text`; else the changed
    sub-word, inside the edited block only (`first_line` = 0-based file line of `text`'s first line)."""
    for rep in replacements:
        whole = re.compile(_WORD_BOUNDARY.format(re.escape(rep.old)))
        if whole.search(text):
            text = whole.sub(lambda _m, y=rep.new: y, text)
            continue
        part = changed_subword(rep)
        if part is None:
            continue
        lines = text.splitlines(keepends=True)
        row = _anchor_row([line.rstrip("\r\n") for line in lines], rep, first_line)
        if row is None:
            continue
        lo, hi = edit_scope([line.rstrip("\r\n") for line in lines], row)
        text = "".join(lines[:lo]) + _replace_subword("".join(lines[lo:hi + 1]), part) + "".join(lines[hi + 1:])
    return text


def propagate_region(example: Example, region: tuple[int, int]) -> str | None:
    """The text span `region` of the snapshot with the latest edit's renames propagated, or None when the
    heuristic has nothing to propose there (no history, no identifier replaced, or no occurrence left)."""
    snap = example.snapshot
    if not snap.history:
        return None
    try:
        replacements = replacements_in_edit(snap.history[-1].diff)
    except patchlib.PatchError:
        return None
    if not replacements:
        return None
    start, end = region
    text = snap.text[start:end]
    first_line = snap.start_line + snap.text.count("\n", 0, start)
    new_text = propagate_text(text, replacements, first_line=first_line)
    return None if new_text == text else new_text


class NoopPredictor(Predictor):
    """Never edits: the floor every model must beat (scores well only where no edit is expected)."""

    scheme = "noop"

    def predict(self, example: Example, *, samples: int = 1) -> list[Prediction]:
        """`samples` empty predictions."""
        return [Prediction(provider=self.name, sample=i, raw="", patch="") for i in range(samples)]


class PropagatePredictor(Predictor):
    """Finishes a rename in progress: repeats the latest history edit's identifier replacement."""

    scheme = "propagate"
    version = "3"

    def propose(self, example: Example) -> str:
        """The patch (possibly empty) this baseline proposes for the example."""
        snap = example.snapshot
        start, end = snap.editable or (0, len(snap.text))
        new_region = propagate_region(example, (start, end))
        if new_region is None:
            return ""
        return patchlib.from_region(snap.text, (start, end), new_region, path=snap.path,
                                    start_line=snap.start_line)

    def predict(self, example: Example, *, samples: int = 1) -> list[Prediction]:
        """`samples` copies of the (deterministic) propagated edit."""
        patch = self.propose(example)
        return [Prediction(provider=self.name, sample=i, raw=patch, patch=patch) for i in range(samples)]
