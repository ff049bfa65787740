"""The command line, run in-process through its real entry point (exit codes, stdout vs stderr)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from service.config import load_settings
from service.db.engine import unit_of_work
from service.grants.service import authenticate
from service.security import TokenHasher, load_pepper
from tests.audit.test_audit_service import FORMULAS, add_formula_events, exported_formula_cells
from tests.cli.conftest import DEMO_POLICY, Invoke


def test_grants_create_prints_the_token_last_and_it_works(run: Invoke, config: Path, engine: Engine) -> None:
    assert run("users", "create", "dana", "--role", "viewer").code == 0
    result = run("grants", "create", "design-bot", "--owner", "dana", "--label", "team=design")
    assert result.code == 0
    token = result.out.strip().splitlines()[-1]
    hasher = TokenHasher(load_pepper(load_settings(config)))
    with unit_of_work(engine) as session:
        _grant, info = authenticate(session, hasher, token)
    assert (info.name, info.owner) == ("design-bot", "dana")
    as_json = json.loads(run("grants", "create", "other-bot", "--json").out)
    assert set(as_json) == {"name", "token"}
    listed = json.loads(run("grants", "list", "--json").out)
    assert [g["name"] for g in listed] == ["design-bot", "other-bot"]
    assert all(token not in json.dumps(g) for g in listed)
    assert run("grants", "revoke", "design-bot").code == 0
    assert [g["name"] for g in json.loads(run("grants", "list", "--json").out)] == ["other-bot"]


def test_users_create_json_has_the_documented_keys(run: Invoke) -> None:
    result = run("users", "create", "ana", "--role", "approver", "--slack-user", "U024BE7LH", "--json")
    data = json.loads(result.out)
    assert set(data) == {"username", "role", "password", "api_token"}
    assert data["role"] == "approver"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("grants", "create", "bot", "--owner", "nobody"), "no user named 'nobody'"),
        (("users", "create", "bob", "--role", "boss"), "unknown role 'boss'"),
        (("grants", "revoke", "ghost"), "no grant named 'ghost'"),
        (("grants", "reach", "ghost", "--all"), "no grant named 'ghost'"),
        (("grants", "reach", "ghost"), "give --upstream (repeatable), --all or --none"),
        (("grants", "reach", "ghost", "--all", "--none"), "give --upstream (repeatable), --all or --none"),
        (("users", "deactivate", "ghost"), "no user named 'ghost'"),
        (("users", "reactivate", "../../etc/passwd"), "no user named '../../etc/passwd'"),
        (("users", "delete", "' OR 1=1; --", "--yes"), 'no user named "\' OR 1=1; --"'),
        (("grants", "create", "bot", "--label", "oops"), "must look like key=value"),
        (("policy", "simulate", "--grant", "ghost", "--tool", "x"), "no active grant named 'ghost'"),
        (("policy", "simulate", "--grant", "ghost", "--tool", "x", "--args", "{nope"), "not valid JSON"),
        (("audit", "export", "--since", "last tuesday"), "not an ISO date"),
        (("audit", "export", "--until", "0001-01-01T00:00:00+14:00"), "outside the years 1 to 9999"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run: Invoke, args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err and result.out == ""


def test_grants_reach_sets_what_a_grant_reaches_and_list_shows_it(run: Invoke) -> None:
    assert run("grants", "create", "bot").code == 0
    assert "reaches no upstream" in run("grants", "reach", "bot", "--none").out
    assert json.loads(run("grants", "list", "--json").out)[0]["upstreams"] == []
    assert run("grants", "list").out.splitlines()[1].split()[3] == "none"  # the UPSTREAMS column
    unknown = run("grants", "reach", "bot", "--upstream", "imagegen")
    assert unknown.code == 2 and "unknown upstream 'imagegen'" in unknown.err  # this config names no upstream
    assert "reaches every upstream" in run("grants", "reach", "bot", "--all").out
    assert json.loads(run("grants", "list", "--json").out)[0]["upstreams"] is None


def test_duplicates_are_refused(run: Invoke) -> None:
    assert run("grants", "create", "bot").code == 0
    again = run("grants", "create", "bot")
    assert again.code == 2 and "already exists" in again.err


def test_policy_check(run: Invoke, tmp_path: Path) -> None:
    good = run("policy", "check", str(DEMO_POLICY))
    assert good.code == 0 and "ok" in good.out
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text('version: "1"\ntools:\n  a: {limits: [{counter: c, window: fortnight, max: -1}]}\n')
    bad = run("policy", "check", str(bad_file), "--json")
    assert bad.code == 2
    problems = json.loads(bad.out)["problems"]
    assert {p["path"] for p in problems} == {"/tools/a/limits/0/max"}
    assert problems[0]["line"] == 3


def test_simulate_prints_one_json_object_from_file_then_from_the_database(run: Invoke, tmp_path: Path) -> None:
    run("grants", "create", "bot")
    cheap = {"prompt": "x", "provider": "openai", "model": "gpt-image-1", "quality": "draft"}
    result = run("policy", "simulate", "--grant", "bot", "--tool", "generate_image", "--args", json.dumps(cheap))
    decision = json.loads(result.out)
    assert decision["outcome"] == "allow"
    assert decision["rule"] == "/tools/generate_image"
    assert decision["cost"] == {"usd": pytest.approx(0.011)}
    dear = run(
        "policy",
        "simulate",
        "--grant",
        "bot",
        "--tool",
        "generate_image",
        "--args",
        json.dumps({**cheap, "quality": "high", "n": 4}),
    )
    assert json.loads(dear.out)["outcome"] == "hold"
    # Apply a stricter version: simulate now follows the database, not the file.
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        'version: "1"\ndefault: deny\ntools:\n  generate_image: {action: deny, on_deny: "Images are off today."}\n'
    )
    assert run("policy", "apply", str(strict), "--comment", "images off").code == 0
    denied = json.loads(
        run("policy", "simulate", "--grant", "bot", "--tool", "generate_image", "--args", json.dumps(cheap)).out
    )
    assert (denied["outcome"], denied["reason"], denied["rule"]) == (
        "deny",
        "Images are off today.",
        "/tools/generate_image/action",
    )
    history = json.loads(run("policy", "history", "--json").out)
    assert history[0]["comment"] == "images off"


def test_simulate_never_changes_counters(run: Invoke) -> None:
    run("grants", "create", "bot")
    args = json.dumps({"prompt": "x", "provider": "openai", "model": "gpt-image-1", "quality": "draft"})
    outcomes = {
        json.loads(run("policy", "simulate", "--grant", "bot", "--tool", "generate_image", "--args", args).out)[
            "outcome"
        ]
        for _ in range(35)
    }
    assert outcomes == {"allow"}  # the 30/minute limit was never touched


def test_audit_verify_export_and_purge(run: Invoke, engine: Engine) -> None:
    run("grants", "create", "a")
    run("grants", "create", "b")
    ok = run("audit", "verify")
    assert ok.code == 0 and "2 events verified" in ok.out
    lines = run("audit", "export", "--format", "jsonl").out.strip().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["grant.created", "grant.created"]
    csv_out = run("audit", "export", "--format", "csv").out
    assert csv_out.splitlines()[0].startswith("seq,occurred_at,kind,action")
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 1"))
    broken = run("audit", "verify")
    assert broken.code == 1 and "changed" in broken.out
    purged = run("audit", "purge", "--before", "2999-01-01")
    assert purged.code == 0 and "2 events purged" in purged.out
    assert run("audit", "verify").code == 0
    add_formula_events(engine)
    cells = exported_formula_cells(run("audit", "export", "--format", "csv").out)
    assert cells == [("agent:" + f, "'" + f, "'" + f) for f in FORMULAS]  # no cell a spreadsheet would run


def test_invalid_config_is_exit_2_naming_the_key(run: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: {port: 0}\n")
    result = run("grants", "list", "--config", str(bad), with_config=False)
    assert result.code == 2
    assert "listen.port" in result.err and "Traceback" not in result.err


def test_console_script_keeps_logs_off_stdout(config: Path) -> None:
    airlock = Path(sys.executable).parent / "airlock"
    result = subprocess.run(
        [str(airlock), "grants", "create", "bot", "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("alk_")
    for line in result.stderr.strip().splitlines():
        json.loads(line)  # every log line is JSON


def test_users_deactivate_reactivate_and_delete(run: Invoke) -> None:
    assert run("users", "create", "root", "--role", "admin").code == 0
    assert run("users", "create", "dana", "--role", "approver").code == 0
    assert run("grants", "create", "design-bot", "--owner", "dana").code == 0
    gone = run("users", "deactivate", "dana")
    assert gone.code == 0
    assert "grants suspended: design-bot" in gone.out and "1 API token(s) revoked" in gone.out
    listed = {u["username"]: u["disabled"] for u in json.loads(run("users", "list", "--json").out)}
    assert listed == {"dana": True, "root": False}
    back = run("users", "reactivate", "dana")
    assert back.code == 0 and "grants restored: design-bot" in back.out
    last = run("users", "deactivate", "root")
    assert last.code != 0 and "root is the last active admin" in last.err
    deleted = run("users", "delete", "dana", "--yes")
    assert deleted.code == 0 and "grants revoked: design-bot" in deleted.out
    assert [u["username"] for u in json.loads(run("users", "list", "--json").out)] == ["root"]
    grants = json.loads(run("grants", "list", "--all", "--json").out)
    assert [(g["name"], g["owner"], g["revoked"]) for g in grants] == [("design-bot", "dana", True)]
