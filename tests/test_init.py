"""`campaign init NAME`: a campaign that validates and plans, with next steps."""

from __future__ import annotations

from pathlib import Path


def test_init_creates_a_working_campaign(repo: Path, run_cli, snapshot) -> None:
    result = run_cli("init", "spring-sale")
    assert result.code == 0, result.transcript()
    snapshot.assert_match(result.transcript(), "init.txt")
    assert (repo / "campaigns" / "assets" / "spring-sale" / "product.png").is_file()
    assert run_cli("validate", "campaigns/spring-sale.toml").code == 0
    assert run_cli("plan", "campaigns/spring-sale.toml").code == 0


def test_init_refuses_to_overwrite(repo: Path, run_cli) -> None:
    assert run_cli("init", "spring-sale").code == 0
    result = run_cli("init", "spring-sale")
    assert result.code == 2
    assert result.err == "campaigns/spring-sale.toml already exists; choose another name or remove it\n"


def test_init_rejects_a_bad_name(repo: Path, run_cli) -> None:
    result = run_cli("init", "Spring Sale")
    assert result.code == 2
    assert "must be a slug" in result.err
