"""`edge fleet` reads every site under a bucket prefix and never writes to the bucket;
`edge list/show --site` inspect one site's copy; a refresh restores only what changed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.fleet.bucket import ReadOnlyStore, ReadOnlyViolation
from edge.fleet.sites import LeaseJudge
from edge.replication import LeaseRecord, open_store
from tests.conftest import run_cli
from tests.fleet.conftest import Sites


def by_site(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["site"]: s for s in report["sites"]}


def build_fleet(sites: Sites) -> None:
    sites.build("alpha", good_n=3, bad_n=1, waiting=["wait-a1", "wait-a2"])
    sites.build("bravo", good_n=2, release=True)
    sites.build("charlie", data=False)  # a lease, no upload yet
    sites.put("sites/delta/lease.json", b"{not json")
    sites.put("sites/not-a-site/readme.txt", b"no lease here")


def test_fleet_reads_every_site_and_writes_nothing(
        sites: Sites, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        fleet_json: Callable[..., dict[str, Any]]) -> None:
    build_fleet(sites)
    before = sites.snapshot()
    cache = str(tmp_path / "cache")

    report = fleet_json("--replica", sites.url, "--cache-dir", cache)
    got = by_site(report)
    assert sorted(got) == ["alpha", "bravo", "charlie", "delta"]  # not-a-site has no lease

    a = got["alpha"]
    assert a["error"] is None, a
    assert a["lease"]["state"] == "held" and a["lease"]["holder"] == "node-alpha"
    assert a["lease"]["epoch"] == 1
    assert a["workflows"]["SUCCEEDED"] == 3 and a["workflows"]["FAILED"] == 1
    assert a["workflows"]["WAITING"] == 2
    assert a["failed_24h"] == 1
    assert a["oldest_waiting"]["id"] == "wait-a1"
    assert a["oldest_waiting"]["waiting_for"] == "go"
    assert a["replica"]["epoch"] == 1 and a["replica"]["objects"] >= 1
    assert a["replica"]["age_seconds"] < 120
    assert a["read"]["restored"] is True

    assert got["bravo"]["lease"]["state"] == "released"
    assert got["bravo"]["workflows"]["SUCCEEDED"] == 2 and got["bravo"]["failed_24h"] == 0
    assert got["charlie"]["lease"]["state"] == "held" and got["charlie"]["replica"] is None
    assert got["delta"]["error"]["code"] == "data_error"
    assert "malformed" in got["delta"]["error"]["message"]

    # The readable table, and one site's copy through list/show --site.
    code, out, err = run_cli(["fleet", "--replica", sites.url, "--cache-dir", cache], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["SITE", "LEASE", "HOLDER"]
    alpha = next(ln for ln in lines if ln.startswith("alpha"))
    assert "held" in alpha and "node-alpha" in alpha and "wait-a1" in alpha
    assert "4 sites under" in lines[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGE_FLEET_CACHE", cache)
        code, out, err = run_cli(["list", "--site", "alpha", "--replica", sites.url,
                                  "--status", "WAITING", "--json"], capsys)
        assert code == 0, err
        assert sorted(w["id"] for w in json.loads(out)["workflows"]) == ["wait-a1", "wait-a2"]
        code, out, err = run_cli(["show", "wait-a2", "--site", "alpha", "--replica", sites.url,
                                  "--json"], capsys)
        assert code == 0, err
        assert json.loads(out)["status"] == "WAITING"
        code, out, err = run_cli(["show", "x", "--site", "nowhere", "--replica", sites.url],
                                 capsys)
        assert code == 1 and "no site 'nowhere'" in err and "hint:" in err
        code, out, err = run_cli(["list", "--site", "../alpha", "--replica", sites.url], capsys)
        assert code == 2 and "invalid site name" in err

    assert sites.snapshot() == before  # same keys, ETags, sizes and times: nothing written


def test_refresh_restores_only_the_changed_site(
        sites: Sites, tmp_path: Path, fleet_json: Callable[..., dict[str, Any]]) -> None:
    sites.build("one", good_n=1)
    sites.build("two", good_n=1)
    cache = str(tmp_path / "cache")
    first = by_site(fleet_json("--replica", sites.url, "--cache-dir", cache))
    assert first["one"]["read"]["restored"] and first["two"]["read"]["restored"]

    again = by_site(fleet_json("--replica", sites.url, "--cache-dir", cache))
    assert not again["one"]["read"]["restored"] and not again["two"]["read"]["restored"]

    sites.update("two", good_n=2)
    later = by_site(fleet_json("--replica", sites.url, "--cache-dir", cache))
    assert not later["one"]["read"]["restored"]
    assert later["two"]["read"]["restored"]
    assert later["two"]["workflows"]["SUCCEEDED"] == 3


def test_an_unreachable_bucket_is_one_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from tests.dr.conftest import free_port

    url = f"s3://nobucket/sites?endpoint=http://127.0.0.1:{free_port()}"
    code, out, err = run_cli(["fleet", "--replica", url, "--cache-dir", str(tmp_path)], capsys)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and "unreachable" in err and "hint:" in err
    assert "Traceback" not in err
    code, out, err = run_cli(["fleet"], capsys)
    assert code == 2 and "--replica is required" in err


def test_the_view_refuses_every_write(tmp_path: Path) -> None:
    from edge.replication import parse_replica_url

    inner = open_store(parse_replica_url(f"file://{tmp_path / 'root'}"))
    ro = ReadOnlyStore(inner)
    for call in (lambda: ro.put("k", b"x"), lambda: ro.put_if_absent("k", b"x"),
                 lambda: ro.put_if_match("k", b"x", "e"), lambda: ro.delete_prefix("p/")):
        with pytest.raises(ReadOnlyViolation):
            call()
    assert not (tmp_path / "root").exists()


def record(etag: str, released: bool = False, ttl: float = 10.0) -> LeaseRecord:
    return LeaseRecord("n1", 3, 0.0, released, "x", etag, ttl)


def test_lease_judged_by_the_takeover_rule() -> None:
    now = [100.0]
    judge = LeaseJudge(lambda: now[0])
    assert judge.judge("s", record("e1")).state == "held"
    now[0] += 9.9
    assert judge.judge("s", record("e1")).state == "held"
    now[0] += 0.1
    view = judge.judge("s", record("e1"))
    assert view.state == "expired" and view.unchanged_for == pytest.approx(10.0)
    now[0] += 1
    assert judge.judge("s", record("e2")).state == "held"  # renewed: a new ETag
    assert judge.judge("s", record("e3", released=True)).state == "released"
    # Observations survive a restart of the observer (the CLI saves them).
    later = LeaseJudge(lambda: now[0] + 30, judge.snapshot())
    assert later.judge("s", record("e3", ttl=30)).state == "expired"
    # A clock that went back never makes a lease look older.
    back = LeaseJudge(lambda: 0.0, {"s": ("e3", 50.0)})
    assert back.judge("s", record("e3")).state == "held"


def test_a_file_replica_fleet_is_read_the_same_way(
        tmp_path: Path, fleet_json: Callable[..., dict[str, Any]]) -> None:
    """file:// roots: the same discovery, lease, listing and restore, and no file of the
    replica directory changes (not even a lock file appears)."""
    from edge.fleet.bucket import site_target
    from edge.replication import Lease, parse_replica_url
    from tests.fleet.conftest import run_site_node
    from tests.integration.conftest import replicate_once

    root = parse_replica_url(f"file://{tmp_path / 'bucket' / 'sites'}")
    for name, bad in (("north", 1), ("south", 0)):
        target = site_target(root, name)
        assert Lease(target, f"node-{name}").acquire(None).held
        run_site_node(tmp_path / name, 2, bad)
        replicate_once(tmp_path / name / "edge.db", target, 1, tmp_path / "ls" / name)

    def files() -> dict[str, tuple[int, int]]:
        base = tmp_path / "bucket"
        return {str(p.relative_to(base)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in base.rglob("*") if p.is_file()}

    before = files()
    got = by_site(fleet_json("--replica", root.url + "/", "--cache-dir", str(tmp_path / "c")))
    assert sorted(got) == ["north", "south"]
    assert got["north"]["workflows"]["FAILED"] == 1 and got["north"]["failed_24h"] == 1
    assert got["south"]["workflows"]["SUCCEEDED"] == 2
    assert got["south"]["lease"]["state"] == "held"
    assert files() == before


def test_an_unusable_cache_dir_is_one_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    url = f"file://{tmp_path / 'nothing'}"
    code, out, err = run_cli(["fleet", "--replica", url, "--cache-dir", str(blocker / "c")],
                             capsys)
    assert code == 2 and err.startswith("error: --cache-dir") and "hint:" in err, err


def test_a_site_whose_copy_cannot_be_kept_is_that_sites_error(
        tmp_path: Path, fleet_json: Callable[..., dict[str, Any]]) -> None:
    from edge.fleet.bucket import site_target
    from edge.replication import Lease, parse_replica_url
    from tests.fleet.conftest import run_site_node
    from tests.integration.conftest import replicate_once

    root = parse_replica_url(f"file://{tmp_path / 'bucket'}")
    for name in ("east", "west"):
        target = site_target(root, name)
        assert Lease(target, f"node-{name}").acquire(None).held
        run_site_node(tmp_path / name, 1, 0)
        replicate_once(tmp_path / name / "edge.db", target, 1, tmp_path / "ls" / name)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "east").write_text("a file where east's directory would go")
    got = by_site(fleet_json("--replica", root.url, "--cache-dir", str(cache)))
    assert got["east"]["error"]["code"] == "cache_error" and got["east"]["workflows"] is None
    assert got["west"]["error"] is None and got["west"]["workflows"]["SUCCEEDED"] == 1


def test_a_live_site_node_is_seen_as_it_runs(
        sites: Sites, tmp_path: Path, fleet_json: Callable[..., dict[str, Any]]) -> None:
    """A real `edge run` writing under sites/live: its lease (held by its node id, renewed
    under our feet), its epoch and its workflows as they finish; then released."""
    from tests.conftest import wait_until
    from tests.dr.conftest import SiteNode

    node = SiteNode(tmp_path, "live", tmp_path / "live-data",
                    f"s3://{sites.bucket}/sites/live?endpoint={sites.endpoint}",
                    tmp_path / "effects.log")
    try:
        node.wait_ready(60)
        node_id = node.status()["node_id"]
        for i in range(3):
            node.start("job", i, f"live-{i}")
        node.wait_all([f"live-{i}" for i in range(3)])
        cache = str(tmp_path / "cache")

        def seen_done() -> dict[str, Any] | None:
            live = by_site(fleet_json("--replica", sites.url, "--cache-dir", cache))["live"]
            return live if (live["workflows"] or {}).get("SUCCEEDED") == 3 else None

        live = wait_until(seen_done, 30, "the fleet to see the live site's workflows", 0.5)
        assert live["lease"]["state"] == "held" and live["lease"]["holder"] == node_id
        assert live["lease"]["epoch"] == 1 and live["replica"]["epoch"] == 1
        assert live["error"] is None
        assert node.term() == 0
        after = by_site(fleet_json("--replica", sites.url, "--cache-dir", cache))["live"]
        assert after["lease"]["state"] == "released"
        assert after["workflows"]["SUCCEEDED"] == 3
    finally:
        node.stop_quietly()


DEEP_LEASE = b"[" * 100_000 + b"]" * 100_000


def test_a_lease_nested_too_deep_is_that_sites_row(
        sites: Sites, tmp_path: Path, fleet_json: Callable[..., dict[str, Any]],
        capsys: pytest.CaptureFixture[str]) -> None:
    sites.build("good", good_n=1)
    sites.put("sites/deep/lease.json", DEEP_LEASE)
    got = by_site(fleet_json("--replica", sites.url, "--cache-dir", str(tmp_path / "c")))
    assert got["good"]["error"] is None and got["good"]["workflows"]["SUCCEEDED"] == 1
    assert got["deep"]["error"]["code"] == "data_error", got["deep"]
    assert "nests too deep" in got["deep"]["error"]["message"]
    # The text table too: both rows, exit 0, no "bug in edge".
    code, out, err = run_cli(["fleet", "--replica", sites.url, "--cache-dir",
                              str(tmp_path / "c")], capsys)
    assert code == 0 and "good" in out and "deep" in out and "nests too deep" in out, (out, err)
    assert "bug in edge" not in out + err


def test_a_symlinked_site_directory_is_that_sites_row(
        tmp_path: Path, fleet_json: Callable[..., dict[str, Any]],
        capsys: pytest.CaptureFixture[str]) -> None:
    from edge.fleet.bucket import site_target
    from edge.replication import Lease, parse_replica_url
    from tests.fleet.conftest import run_site_node
    from tests.integration.conftest import replicate_once

    root = parse_replica_url(f"file://{tmp_path / 'bucket'}")
    elsewhere = parse_replica_url(f"file://{tmp_path / 'elsewhere'}")
    for name, where in (("north", root), ("moved", elsewhere)):
        target = site_target(where, name)
        assert Lease(target, f"node-{name}").acquire(None).held
        run_site_node(tmp_path / name, 1, 0)
        replicate_once(tmp_path / name / "edge.db", target, 1, tmp_path / "ls" / name)
    (tmp_path / "bucket" / "linked").symlink_to(tmp_path / "elsewhere" / "moved")
    got = by_site(fleet_json("--replica", root.url, "--cache-dir", str(tmp_path / "c")))
    assert got["north"]["error"] is None and got["north"]["workflows"]["SUCCEEDED"] == 1
    err = got["linked"]["error"]
    assert err["code"] == "data_error" and "outside the replica directory" in err["message"]
    assert "symbolic link" in err["message"] and err["hint"]
    code, out, stderr = run_cli(["fleet", "--replica", root.url, "--cache-dir",
                                 str(tmp_path / "c")], capsys)
    assert code == 0 and "north" in out and "linked" in out, (out, stderr)
    assert "bug" not in out + stderr
