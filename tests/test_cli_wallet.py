"""``rating wallet show|grant|deposit``: the CLI's side of the service's balance, grants and payments."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from rating.billing.payments import sign
from rating.cli import main
from tests.helpers import EXAMPLE

SECRET = b"cli-secret"
Run = tuple[int, str, str]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATING_PAYMENT_SECRETS", "old-secret, " + SECRET.decode())  # two while one is rotated

    def invoke(*argv: str) -> Run:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def confirmation(tmp_path: Path, payment_id: str = "pi_1", amount: str = "20.00", secret: bytes = SECRET) -> list[str]:
    """A confirmation file and its signature file, as the processor would send them: the argv of a deposit."""
    fields = {"payment_id": payment_id, "customer": "dev-1", "asset": "USD", "amount": amount,
              "status": "succeeded", "created": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
    body = tmp_path / f"{payment_id}.json"
    body.write_bytes(json.dumps(fields).encode())
    signature = tmp_path / f"{payment_id}.sig"
    signature.write_text(sign(body.read_bytes(), secret) + "\n")
    return [str(body), "--signature", str(signature), "-p", str(EXAMPLE)]


def shown(run) -> dict:  # type: ignore[no-untyped-def,type-arg]
    code, out, err = run("wallet", "show", "dev-1", "-o", "json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_a_signed_confirmation_deposits_once(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("db", "migrate", "--db", "rating.db")[0] == 0
    code, out, err = run("wallet", "deposit", *confirmation(tmp_path), "-o", "json")
    assert (code, json.loads(out)[0]["status"]) == (0, "credited"), err
    code, out, _ = run("wallet", "deposit", *confirmation(tmp_path), "-o", "json")
    assert (code, json.loads(out)[0]["status"]) == (0, "replayed")
    assert shown(run)["assets"] == [{"asset": "USD", "available": "20.00", "reserved": "0", "posted": "20.00",
                                     "owed": "0"}]  # fmt: skip


def test_a_deposit_is_refused_unsigned_forged_or_without_a_secret(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("db", "migrate", "--db", "rating.db")
    forged = confirmation(tmp_path, secret=b"guess")
    code, _, err = run("wallet", "deposit", *forged)
    assert code == 3 and "signature" in err
    code, _, err = run("wallet", "deposit", forged[0], "-p", str(EXAMPLE))
    assert code != 0 and "--signature" in err  # no deposit without its signature
    code, _, err = run("wallet", "deposit", *confirmation(tmp_path, amount="5"), "--amount", "5")
    assert code != 0 and "--amount" in err  # an amount is only ever what the signed file says
    monkeypatch.delenv("RATING_PAYMENT_SECRETS")
    code, _, err = run("wallet", "deposit", *confirmation(tmp_path, "pi_2"))
    assert code == 3 and "no payment secret" in err
    assert shown(run)["assets"] == []


def test_a_grant_is_given_once_and_shown_with_what_is_left(run) -> None:  # type: ignore[no-untyped-def]
    run("db", "migrate", "--db", "rating.db")
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).replace(microsecond=0).isoformat()
    argv = ["wallet", "grant", "dev-1", "--asset", "USD", "--amount", "7.50", "--id", "welcome", "--expires", expires]
    code, _, err = run(*argv)
    assert code == 0 and err.startswith("granted 7.50 USD to dev-1")
    code, _, err = run(*argv)
    assert code == 0 and err.startswith("already granted")
    code, _, err = run(*argv[:6], "9", *argv[7:])
    assert code == 3 and "welcome" in err  # the same id with another amount: refused, nothing posted
    wallet = shown(run)
    assert wallet["assets"][0]["available"] == "7.50"
    [grant] = wallet["grants"]
    assert (grant["grant"], grant["amount"], grant["remaining"], grant["kind"]) == ("welcome", "7.50", "7.50",
                                                                                    "promotional")  # fmt: skip
    assert (grant["expires"], grant["in_force"]) == (expires, True)
    code, out, _ = run("wallet", "show", "dev-1")
    assert code == 0 and "welcome" in out and "7.50" in out
