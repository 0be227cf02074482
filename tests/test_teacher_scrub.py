"""Secret scrubbing on a corpus of planted secrets; ordinary code left alone; placeholders round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextedit.privacy.scrub import Scrubber, find_secrets, scrub

# (kind expected in the placeholder, line with the secret, the secret itself). Made-up values.
PLANTED = [
    ("AWS_KEY", 'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"', "AKIAIOSFODNN7EXAMPLE"),
    ("AWS_KEY", 'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("GITHUB_TOKEN", 'GITHUB = "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB"',
     "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB"),
    ("SLACK_TOKEN", "slack = 'xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx'",
     "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx"),
    ("STRIPE_KEY", 'stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"', "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("ANTHROPIC_KEY", 'client = Anthropic(api_key="sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789-ABCDEFG")',
     "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789-ABCDEFG"),
    ("OPENAI_KEY", 'OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD',
     "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"),
    ("GOOGLE_KEY", 'maps = Client(key="AIzaSyA1234567890abcdefghijklmnopqrstuv")',
     "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    ("HUGGINGFACE_TOKEN", 'login(token="hf_abcdefghijklmnopqrstuvwxyzABCDEFGH")', "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"),
    ("PASSWORD", 'DATABASE_URL = "postgresql://admin:s3cr3tPa55@db.example.com:5432/app"', "s3cr3tPa55"),
    ("PASSWORD", "redis_url: redis://:hunter2hunter2@cache.internal:6379/0", "hunter2hunter2"),
    ("CONNECTION_PASSWORD", 'conn = "Server=tcp:x.example.net;Database=app;User ID=me;Password=Tr0ub4dor&3;"',
     "Tr0ub4dor&3"),
    ("SECRET", 'password = "correct horse battery staple"', "correct horse battery staple"),
    ("SECRET", 'session_secret = "8f14e45fceea167a5a36dedd4bea2543"', "8f14e45fceea167a5a36dedd4bea2543"),
    ("BEARER_TOKEN", 'headers = {"Authorization": "Bearer abcdef0123456789abcdef0123456789zz"}',
     "abcdef0123456789abcdef0123456789zz"),
    ("JWT", "jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("HIGH_ENTROPY", 'digest = "8f14e45fceea167a5a36dedd4bea2543"', "8f14e45fceea167a5a36dedd4bea2543"),
]

PRIVATE_KEY = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234567890abcdefghij\n"
               "klmnopqrstuvwxyz0123456789ABCDEFGHIJ\n-----END RSA PRIVATE KEY-----")


@pytest.mark.parametrize(("kind", "line", "secret"), PLANTED, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(PLANTED)])
def test_each_planted_secret_is_replaced_by_a_placeholder_of_its_kind(kind: str, line: str, secret: str) -> None:
    s = Scrubber()
    out = s.scrub(f"def setup():\n    {line}\n    return 1\n")
    assert secret not in out
    assert f"<SECRET_{kind}_1>" in out, out
    assert out.startswith("def setup():\n    ") and out.endswith("\n    return 1\n")
    assert s.unscrub(out) == f"def setup():\n    {line}\n    return 1\n"


def test_private_key_block_goes_as_a_whole() -> None:
    text = f'KEY = """{PRIVATE_KEY}"""\nprint(KEY)\n'
    out = scrub(text)
    # Line by line, so that line numbers (diffs, diagnostics) stay valid; the BEGIN/END lines stay.
    assert out == ('KEY = """-----BEGIN RSA PRIVATE KEY-----\n<SECRET_PRIVATE_KEY_1>\n<SECRET_PRIVATE_KEY_2>\n'
                   '-----END RSA PRIVATE KEY-----"""\nprint(KEY)\n')
    cut = "key = '''-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
    assert "b3BlbnNza" not in scrub(cut)  # an excerpt cut before the END line still loses the key


def test_whole_corpus_in_one_text() -> None:
    text = "\n".join(line for _, line, _ in PLANTED) + "\n" + PRIVATE_KEY + "\n"
    s = Scrubber()
    out = s.scrub(text)
    for _, _, secret in PLANTED:
        assert secret not in out
    assert "MIIEowIBAAKCAQEA" not in out
    assert s.count == len({secret for _, _, secret in PLANTED}) + 2  # one per distinct value, per key line
    assert s.unscrub(out) == text


def test_same_secret_same_placeholder_across_a_conversation() -> None:
    s = Scrubber()
    first = s.scrub('API_KEY = "AKIAIOSFODNN7EXAMPLE"\n')
    # In a word diff the secret loses the context detectors rely on; the scrubber still knows it.
    second = s.scrub("[-AKIAIOSFODNN7EXAMPLE-]{+AKIAIOSFODNN7EXAMPLE+}\nother = 'AKIAI0000000000000000'")
    assert first == 'API_KEY = "<SECRET_AWS_KEY_1>"\n'
    assert second.startswith("[-<SECRET_AWS_KEY_1>-]{+<SECRET_AWS_KEY_1>+}")
    assert "AKIAIOSFODNN7EXAMPLE" not in second


def test_unscrub_leaves_unknown_placeholders() -> None:
    s = Scrubber()
    s.scrub('token = "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB"')
    assert s.unscrub("x = '<SECRET_GITHUB_TOKEN_1>' + '<SECRET_GITHUB_TOKEN_9>'") == \
        "x = 'ghp_1234567890abcdefghijklmnopqrstuvwxyzAB' + '<SECRET_GITHUB_TOKEN_9>'"


def test_entropy_detection_can_be_turned_off() -> None:
    text = 'digest = "8f14e45fceea167a5a36dedd4bea2543"\n'
    assert "8f14e45f" not in scrub(text)
    assert "8f14e45f" in Scrubber(entropy=False).scrub('digest = "8f14e45fceea167a5a36dedd4bea2543"\n')


CLEAN = """\
import os
from urllib.parse import urlparse

def connect(url: str, password: str | None = None) -> None:
    parsed = urlparse("https://example.com:8080/path?q=1")
    login(user=parsed.username, password=password)
    password = get_password_from_env()
    token_count = len(tokens)  # count tokens
    self.api_key = api_key
    return os.environ["HOME"]
"""


def test_ordinary_code_is_left_alone() -> None:
    assert find_secrets(CLEAN) == []
    assert scrub(CLEAN) == CLEAN


def test_package_source_has_no_false_positives() -> None:
    root = Path(__file__).resolve().parents[1] / "src" / "nextedit"
    files = [p for p in sorted(root.rglob("*.py")) if "scrub" not in p.name][:40]
    hits = {str(p.relative_to(root)): [f.value for f in find_secrets(p.read_text())] for p in files}
    assert {k: v for k, v in hits.items() if v} == {}


# The leaks found through the real teacher path (issue 16): each line as it sat in its file.
LEAKED_BEFORE = [
    ("home/.aws/credentials", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9aQpLm3K",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9aQpLm3K"),
    ("services/api/.env", "PAYMENTS_API_KEY=pk_9f8a7b6c5d4e3f2a1b0c7d", "pk_9f8a7b6c5d4e3f2a1b0c7d"),
    ("scripts/ci.sh", "export AWS_SECRET_ACCESS_KEY=Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0MTI", "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0MTI"),
    ("config/app.yaml", "  password: Sup3rS3cretPassw0rd", "Sup3rS3cretPassw0rd"),
    ("app/db.py", "conn = psycopg2.connect('host=db.internal password=Xk2#pq9Lm dbname=app user=svc')", "Xk2#pq9Lm"),
    ("settings.py", 'DATABASE_URL = "postgres://svc:ab/cd3fgh@db.internal:5432/app"', "ab/cd3fgh"),
    ("notes.txt", "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U ok",
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
]


@pytest.mark.parametrize(("path", "line", "secret"), LEAKED_BEFORE, ids=[p for p, _, _ in LEAKED_BEFORE])
def test_the_lines_that_leaked_before_are_scrubbed(path: str, line: str, secret: str) -> None:
    s = Scrubber()
    out = s.scrub(f"{line}\n", path=path)
    assert secret not in out and "<SECRET_" in out
    assert s.unscrub(out) == f"{line}\n"
