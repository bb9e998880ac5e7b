"""A real Flower deployment: SuperLink + SuperNodes over TLS, the emulator by message, nothing else of the owner."""

import json
import re
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from fedot.delivery import NodeStore
from fedot.run.deploy import Deployment, make_certificates, make_node_keys
from fedot.run.launch import SimError
from support.flower import own_flower

TINY = ("num-rounds=1 steps=2 batch-size=1 max-length=32 eval-limit=1 full-ft=false emulator-blocks=4 "
        "emulator-chunk-mb=256")
TOLERANCE = 1e-4  # max |deployed - simulated| per adapter weight: same seed, other processes and thread counts


def _handshake(certs: dict, cafile: Path | None) -> None:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs["cert"], certs["key"])
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def accept():
            conn, _ = listener.accept()
            try:
                server_ctx.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        client_ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        with socket.create_connection(listener.getsockname()) as raw:
            client_ctx.wrap_socket(raw, server_hostname="127.0.0.1").close()
        t.join(5)


def test_the_owners_certificate_verifies_against_its_ca_only(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    _handshake(certs, certs["ca"])  # what SuperNodes and the CLI do with --root-certificates
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(certs, None)  # the system's CAs do not vouch for it
    other = make_certificates(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(certs, other["ca"])  # nor does another owner's CA
    assert make_certificates(tmp_path / "certs")["ca"].read_bytes() == certs["ca"].read_bytes()  # kept, not redone


def test_supernode_keys_are_openssh_ec_p384(tmp_path):
    from cryptography.hazmat.primitives import serialization

    private, public = make_node_keys(tmp_path / "keys" / "node")
    key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
    assert key.curve.name == "secp384r1" and serialization.load_ssh_public_key(public.read_bytes()).key_size == 384
    assert private.stat().st_mode & 0o077 == 0


def test_authentication_without_tls_is_refused(tmp_path):
    with pytest.raises(SimError, match="needs TLS"):
        Deployment(tmp_path, 2, tls=False, auth=True)


def _tensor_hashes(files, keep=lambda name: True) -> dict:
    import hashlib

    out = {}
    for file in files:
        with safe_open(file, "pt") as f:
            for name in f.keys():
                if keep(name):
                    t = f.get_tensor(name).float().contiguous()
                    out[hashlib.sha256(t.numpy().tobytes()).hexdigest()] = name
    return out


def test_a_superlink_lost_mid_run_is_reported_with_the_resume_command(tmp_path, monkeypatch):
    """`flwr run --stream` ends when the SuperLink goes away and `flwr ls` cannot reach it: the user is told what
    happened, what Flower keeps, the checkpointed round and how to continue."""
    from fedot.run import checkpoint, launch

    def unreachable(run_id, env, connection=()):
        raise SimError(f"could not read the status of run {run_id}: {launch.UNREACHABLE}. Please check ...")

    monkeypatch.setattr(launch, "run_status", unreachable)
    run_dir = tmp_path / "run"
    checkpoint.save(run_dir, 2, {"w": torch.zeros(2)}, {}, 1e-3)
    cmd = [sys.executable, "-c", "print('Successfully started run 42')"]
    with pytest.raises(SimError) as e:
        launch.stream(cmd, {}, run_dir, verbose=False)
    text = str(e.value)
    assert "SuperLink stopped answering during run 42" in text and "checkpoint holds round 2" in text
    assert f"--resume --run-dir {run_dir}" in text and "--database keeps the runs" in text

    def other(run_id, env, connection=()):
        raise SimError("could not read the status of run 42: something else")

    monkeypatch.setattr(launch, "run_status", other)
    with pytest.raises(SimError, match="something else"):  # any other failure is passed on as it is
        launch.stream(cmd, {}, run_dir, verbose=False)


@pytest.mark.slow
def test_deployment_over_tls_delivers_only_the_emulator_and_matches_the_simulation(tmp_path, monkeypatch):
    from fedot.architectures import architecture
    from fedot.models import resolve

    own_flower(tmp_path, monkeypatch)
    monkeypatch.setenv("FEDOT_NODE_CACHE", str(tmp_path / "simulated-nodes"))
    dep, runs = tmp_path / "deployment", {"deployed": tmp_path / "deployed", "simulated": tmp_path / "simulated"}
    commands = {"deployed": ["deploy", "sims/quickstart", "--dir", str(dep), "--run-config", f"{TINY} num-clients=3"],
                "simulated": ["sim", "sims/quickstart", "--num-clients", "3", "--run-config", TINY]}
    for name, args in commands.items():
        proc = subprocess.run([sys.executable, "-m", "fedot.cli", *args, "--run-dir", str(runs[name])],
                              capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0 and "finished:completed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
        if name == "deployed":  # Flower's commands against this deployment: its home and connection named
            assert re.search(r"`FLWR_HOME=\S+ flwr list fedot-deployment` lists runs", proc.stdout), proc.stdout
    assert "Uvicorn running on https://" in (dep / "superlink.log").read_text()  # the SuperLink served TLS only
    rows = [json.loads(line) for line in (runs["deployed"] / "rounds.jsonl").read_text().splitlines()]
    assert len(rows[1]["accepted"]) == 3
    delivery = json.loads((runs["deployed"] / "delivery.jsonl").read_text().splitlines()[0])
    assert delivery["mode"] == "message" and delivery["failed"] == {}
    aid = delivery["artifact_id"]
    nodes = sorted(dep.glob("supernode-*/"))
    assert len(nodes) == 3
    for node in nodes:  # each SuperNode holds the emulator exactly once, nothing half-received
        store = NodeStore(node / "cache")
        assert store.artifacts() == [aid] and not any((node / "cache" / "incoming").glob("*/*"))
    # no file of any SuperNode holds a tensor of a dropped block; kept blocks' tensors are found (the check works)
    manifest = json.loads((NodeStore(nodes[0] / "cache").get(aid) / "manifest.json").read_text())
    kept = set(manifest["adapter_blocks"]) | set(manifest["emulator_blocks"])
    full = resolve("smollm2-135m")
    arch = architecture(json.loads((full / "config.json").read_text())["model_type"])
    weights = sorted(full.glob("*.safetensors"))

    def of_blocks(wanted):
        return lambda name: arch.block_index(name) is not None and wanted(arch.block_index(name))

    dropped = _tensor_hashes(weights, of_blocks(lambda i: i not in kept))
    kept_hashes = _tensor_hashes(weights, of_blocks(lambda i: i in kept))
    assert len(dropped) > 100
    node_files = [f for node in nodes for f in node.rglob("*") if f.is_file()]
    held = _tensor_hashes([f for f in node_files if f.suffix == ".safetensors"])
    assert not set(held) & (set(dropped) - set(kept_hashes))  # (a tensor equal in a kept block may be held)
    assert set(kept_hashes) <= set(held)
    needles = []  # no raw copy in any other file either: the first bytes of each dropped tensor
    for file in weights:
        with safe_open(file, "pt") as f:
            needles += [f.get_tensor(n).float().numpy().tobytes()[:256] for n in f.keys()
                        if of_blocks(lambda i: i not in kept)(n)]
    for file in node_files:
        if file.suffix != ".safetensors" and file.stat().st_size < 64 * 2**20:
            data = file.read_bytes()
            assert not any(n in data for n in needles), file
    # the same seed gives the same adapter as the Ray simulation
    a, b = (load_file(runs[n] / "adapter.safetensors") for n in ("deployed", "simulated"))
    assert a.keys() == b.keys()
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= TOLERANCE, diff
    with safe_open(weights[0], "pt") as f:  # and it was trained: not the owner's blocks as they were
        assert any(not torch.equal(a[k], f.get_tensor(k).float()) for k in a if k in f.keys())


@pytest.mark.slow
def test_an_authenticated_deployment_admits_registered_keys_only_and_flwr_log_and_stop_work(tmp_path, monkeypatch):
    """One TLS deployment with SuperNode authentication: an intruder with a valid but unregistered key is refused
    while the registered SuperNodes serve a run, and Flower's own `flwr list`, `flwr log` and `flwr stop`, with the
    deployment's connection, work on that run."""
    import time

    from fedot.run.deploy import free_port
    from fedot.run.launch import flwr_cli, handoff, parse_overrides, prepare, run_status

    own_flower(tmp_path, monkeypatch)
    overrides = {**parse_overrides([TINY.replace("num-rounds=1", "num-rounds=40")]), "num-clients": 2,
                 "wait-for-clients-s": 120.0, "run-dir": str(tmp_path / "run")}
    sim, _, cfg, run_dir = prepare("sims/quickstart", overrides)
    with Deployment(tmp_path / "deployment", 2, tls=True, auth=True) as deployment:
        private, _ = make_node_keys(tmp_path / "intruder" / "node")  # a valid key the owner never registered
        deployment._spawn("intruder", ["flower-supernode", "--root-certificates",
                                       str(deployment.root / "certificates" / "ca.crt"), "--superlink",
                                       f"127.0.0.1:{deployment.port}", "--host", "127.0.0.1", "--port",
                                       str(free_port()), "--auth-supernode-private-key", str(private)])
        cmd = [flwr_cli(), "run", str(sim.path), Deployment.CONNECTION, "--stream", *handoff(cfg, run_dir)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=deployment.env)
        try:
            run_id = next(m.group(1) for line in proc.stdout if (m := re.search(r"started run (\d+)", line)))
            deadline = time.monotonic() + 600
            while not (run_dir / "checkpoint" / "state.json").exists():  # a round done: the run is really running
                assert time.monotonic() < deadline and proc.poll() is None, "the deployed run never finished a round"
                time.sleep(0.5)
            nodes = json.loads(deployment.flwr("supernode", "ls", Deployment.CONNECTION, "--format", "json"))["nodes"]
            runs = json.loads(deployment.flwr("list", Deployment.CONNECTION, "--format", "json"))  # over TLS too
            deployment.flwr("stop", run_id, Deployment.CONNECTION)
            proc.wait(timeout=300)
            log = deployment.flwr("log", run_id, Deployment.CONNECTION)  # (while a run lasts, flwr log waits for it)
            status = run_status(run_id, deployment.env, [Deployment.CONNECTION])
        finally:
            if proc.poll() is None:
                proc.kill()
        intruder = (deployment.root / "intruder.log").read_text()
    assert [n["status"] for n in nodes] == ["online", "online"]  # the two registered SuperNodes, not the intruder
    assert "Connection attempt failed" in intruder
    assert runs["success"] and [str(r["run-id"]) for r in runs["runs"]] == [run_id]
    assert "round 1" in log and status == "finished:stopped"
    assert not (run_dir / "results.json").exists() and (run_dir / "checkpoint" / "state.json").exists()


def test_a_restarted_supernode_is_started_again_until_the_superlink_accepts_it(tmp_path, monkeypatch):
    """Flower refuses a SuperNode it still counts as online (exit code 305 for up to 2 heartbeats): restart() tries
    again every RETRY_S until one stays up, and gives up with the log's path after its timeout."""
    from fedot.run import deploy

    monkeypatch.setattr(deploy, "RETRY_S", 3.0)  # longer than a refused start takes even on a busy machine
    dep = Deployment(tmp_path, 1, tls=False)
    tries = tmp_path / "tries"
    script = (f"import pathlib, sys, time; p = pathlib.Path({str(tries)!r}); n = len(p.read_text()) if p.exists() "
              "else 0; p.write_text('x' * (n + 1)); sys.exit(305) if n < 2 else time.sleep(30)")
    dep.commands["supernode-0"] = [sys.executable, "-c", script]
    try:
        dep.restart("supernode-0", timeout=30)
        assert tries.read_text() == "xxx" and dep.running["supernode-0"].poll() is None  # the third one stayed up
    finally:
        dep.stop()
    dep.commands["supernode-0"] = [sys.executable, "-c", "import sys; sys.exit(305)"]
    with pytest.raises(SimError, match=r"supernode-0 did not reconnect within 2 s; see .*supernode-0\.log"):
        dep.restart("supernode-0", timeout=2)
    dep.stop()
