"""hostfaults: kill, cut off, slow down and restart whole hosts under steady load.

    python -m loadtest hostfaults --seed 7 --minutes 10 --out docs/results

Builds --hosts network-namespace hosts (chatroom/hosts.py: each a bus, auth, social,
media and an edge on an address of its own, and with `--database galera`, the default, a
MariaDB Galera node with a writer proxy: chatroom/host_galera.py; `--database single`:
one MariaDB outside the hosts, on the bridge), puts --members clients over their edges
(loadtest/hostfaults.py) with --senders of them sending --rate messages a second each,
and runs a schedule of faults drawn from --seed:

- kill: SIGKILL to every process of one host, down for a few seconds, started again;
- partition: one host's link drops everything, both ways, for --partition-s, then heals;
- slow: every host's link delayed and lossy (tc netem; without netem in the kernel, loss
  by iptables and a bandwidth cap) for a while;
- rolling: every component of every host restarted gracefully, one host at a time
  (its database node too);
- dbkill (Galera): SIGKILL to the database writer's node alone, down for a few seconds,
  started again (it rejoins by a state transfer).

With Galera a cut-off host's side is also probed (loadtest/minority.py): a client inside
that host keeps sending to its edge while the host's node is a minority; nothing it sends
may be acknowledged.

With --minutes 0 the schedule is each fault once, in an order drawn from the seed (what
the CI test runs); otherwise rounds of every fault, each round in an order drawn from
the seed, until the minutes are spent. Between faults
the moved clients are sent back to their home hosts. At the end: the checker's verdict
(loadtest.hostfaults.check) over every acknowledged message and every member's view,
how long clients of a failed host took to resume elsewhere, and how long presence took
to converge after each recovery. Written to <out>/hostfaults.json; the same --seed
replays the same schedule. Needs root and `ip netns`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chatroom import galera
from chatroom.files import private_folder
from chatroom.host_galera import HostGalera
from chatroom.hosts import EDGE_PORT, Cluster, Host, HostDatabase, available
from loadtest.aclient import run_async
from loadtest.hostfaults import LOGIN_TIMEOUT_S, Member, Sender, check, stored_history
from loadtest.results import DEFAULT_OUT, _commit

RESUME_TARGET_S = 10.0
PRESENCE_TARGET_S = 30.0
PRESENCE_WAIT_S = 45.0  # how long to watch for convergence (past the target: to measure)
KINDS = ("kill", "partition", "slow", "rolling", "dbkill")
GALERA_ONLY = ("dbkill",)
DATABASES = ("galera", "single")
NODE_SYNCED_S = 120  # a restarted node's state transfer
PROBE_S = 8.0  # how long the minority probe keeps sending
MIN_PROBE_SENDS = 10
DATABASE_REFUSED = "the database is unavailable"  # chatroom/errors.py


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "hostfaults", parents=[out], help="faults of whole hosts (network namespaces) under load"
    )
    p.add_argument("--seed", type=int, default=None, help="the schedule's seed (default: random)")
    p.add_argument("--minutes", type=float, default=0, help="0: each fault once")
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--members", type=int, default=9)
    p.add_argument("--senders", type=int, default=3)
    p.add_argument("--rate", type=float, default=4.0, help="messages a second per sender")
    p.add_argument("--partition-s", type=float, default=30.0)
    p.add_argument(
        "--database",
        choices=DATABASES,
        default="galera",
        help="galera: a Galera node and a writer proxy on each host; single: one MariaDB "
        "outside the hosts",
    )
    p.add_argument(
        "--faults",
        default="",
        help=f"the kinds of fault to draw from, comma-separated, of {', '.join(KINDS)} "
        f"({', '.join(GALERA_ONLY)}: with Galera only; default: every kind the database has)",
    )
    p.add_argument(
        "--logs",
        type=Path,
        default=DEFAULT_OUT / "hostfaults-logs",
        help="where every process's log is copied at the end (not beside results)",
    )
    p.set_defaults(run=run)


def schedule(
    seed: int, hosts: int, minutes: float, partition_s: float, kinds: tuple[str, ...] = KINDS
) -> list[dict[str, Any]]:
    """The faults, drawn from `seed` alone (the same seed, the same faults)."""
    rng = random.Random(seed)

    def fault(kind: str) -> dict[str, Any]:
        step: dict[str, Any] = {"kind": kind, "gap_s": round(rng.uniform(3, 6), 1)}
        if kind in ("kill", "dbkill"):
            step.update(down_s=round(rng.uniform(3, 8), 1))
            if kind == "kill":
                step.update(host=rng.randrange(hosts))
        elif kind == "partition":
            step.update(host=rng.randrange(hosts), for_s=partition_s)
        elif kind == "slow":
            step.update(
                for_s=round(rng.uniform(15, 25), 1),
                delay_ms=rng.choice([50, 100, 200]),
                loss_pct=rng.choice([1, 3, 5]),
            )
        else:
            step.update(order=rng.sample(range(hosts), hosts))
        return step

    if minutes <= 0:
        return [fault(kind) for kind in rng.sample(kinds, len(kinds))]
    # Rough cost of each fault, recovery and checks included, to fill the minutes.
    cost = {
        "kill": 30,
        "partition": partition_s + 30,
        "slow": 40,
        "rolling": 15 * hosts + 15,
        "dbkill": 30,
    }
    # Rounds of every kind in a drawn order, so that a long run covers each evenly.
    steps: list[dict[str, Any]] = []
    spent = 0.0
    for _ in range(1000):
        for kind in rng.sample(kinds, len(kinds)):
            if spent + cost[kind] > minutes * 60 and steps:
                return steps
            steps.append(fault(kind))
            spent += cost[kind]
    return steps


class Run:
    def __init__(
        self, cluster: Cluster, args: argparse.Namespace, db: HostGalera | None = None
    ) -> None:
        self.cluster = cluster
        self.args = args
        self.db = db  # the replicated database, when there is one
        ips = [h.ip for h in cluster.hosts]
        self.members = [Member(i, f"hf{i}", ips, EDGE_PORT) for i in range(args.members)]
        self.senders = [
            Sender(m, self.members[(m.index + 1) % len(self.members)].name, args.rate)
            for m in self.members[: args.senders]
        ]
        self.started = time.monotonic()
        self.probes = itertools.count()  # numbers the minority probes' users
        self.log: list[str] = []
        self.stale_views: list[dict[str, list[str]]] = []

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:7.1f} s] {text}"
        self.log.append(line)
        print(line, flush=True)

    async def setup(self) -> None:
        """Everyone logged in on their home host; the friend ring made."""
        for member in self.members:
            await member.connect_somewhere(member.home)
        count = len(self.members)
        for member in self.members:
            friend = self.members[(member.index + 1) % count]
            assert member.chat is not None and friend.chat is not None
            await member.chat.call("friend.request", LOGIN_TIMEOUT_S, username=friend.name)
            await friend.chat.call("friend.accept", LOGIN_TIMEOUT_S, username=member.name)
        self.say(f"{count} members on {len(self.cluster.hosts)} hosts, friends in a ring")

    def presence_ok(self) -> bool:
        """Every member connected, and each sees its friends online (they all are)."""
        if not all(m.connected.is_set() for m in self.members):
            return False
        return all(all(m.friends.values()) and len(m.friends) == 2 for m in self.members)

    async def wait_presence(self, since: float) -> float | None:
        """Seconds from `since` until presence converged (None: not within the wait)."""
        deadline = since + PRESENCE_WAIT_S
        while time.monotonic() < deadline:
            if self.presence_ok():
                return round(time.monotonic() - since, 2)
            await asyncio.sleep(0.1)
        wrong = {
            m.name: [f for f, online in m.friends.items() if not online]
            for m in self.members
            if not all(m.friends.values())
        }
        away = [m.name for m in self.members if not m.connected.is_set()]
        self.say(f"presence not converged: shown offline {wrong}; not connected {away}")
        for member in self.members:
            if member.name in wrong:
                pushes = [
                    (round(t - self.started, 1), conn, who, online)
                    for t, conn, who, online in member.presence_log
                    if who in wrong[member.name]
                ]
                self.say(f"  {member.name}'s presence pushes about them: {pushes}")
        # A view left wrong stays wrong (presence pushes have no seq, nothing repairs
        # them): those members log in again, so the next fault is measured on its own.
        self.stale_views.append(wrong)
        for member in self.members:
            if member.name in wrong:
                member.refresh = True
        return None

    async def send_home(self) -> None:
        """Members that moved go back to their home host (planned moves), so that the
        next fault finds clients on every host."""
        for member in self.members:
            if member.host != member.home:
                member.want_host = member.home
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(m.host == m.home and m.connected.is_set() for m in self.members):
                return
            await asyncio.sleep(0.1)
        self.say("not every member went home within 30 s")

    def resumes(self, affected: list[Member], since: float) -> dict[str, Any]:
        """How long the members that were on a failed host took to resume elsewhere,
        from the fault (not from when they noticed)."""
        took: list[float] = []
        not_resumed = 0
        paths = {}
        for member in affected:
            moves = [m for m in member.moves if m.lost_at >= since and not m.planned]
            done = [m for m in moves if m.resumed_at is not None]
            if done:
                first = done[0]
                assert first.resumed_at is not None
                took.append(round(first.resumed_at - since, 2))
                paths[member.name] = {
                    "noticed_s": round(first.lost_at - since, 2),
                    "why": first.why,
                    "failed_attempts": first.attempts,
                    "to_host": first.to_host,
                }
            else:
                not_resumed += 1
        return {
            "clients": len(affected),
            "max_s": max(took) if took else None,
            "median_s": round(statistics.median(took), 2) if took else None,
            "over_target": sum(t > RESUME_TARGET_S for t in took) + not_resumed,
            "not_resumed": not_resumed,
            "paths": paths,
        }

    # ------------------------------------------------------------ the replicated database

    def writers(self) -> dict[str, int]:
        """Per node, the services' connections on it (-1: not answering): one writer
        holds them all."""
        assert self.db is not None
        return {node.name: n for node, n in galera.connections(self.db.nodes).items()}

    async def kill_writer(self, step: dict[str, Any], result: dict[str, Any]) -> float:
        """kill -9 the writer's node alone; started again after down_s, until it is
        Synced. The sends of the moment wait for the proxies to pick the next writer
        (their retries with the same client_id store each once). Returns when it was
        back."""
        assert self.db is not None
        db = self.db
        deadline = time.monotonic() + 30  # the previous fault's node may still be joining
        while (node := await asyncio.to_thread(db.writer)) is None:
            if time.monotonic() > deadline:
                states = db.states()
                raise RuntimeError(f"no node holds the services' connections: {states}")
            await asyncio.sleep(0.5)
        t0 = time.monotonic()
        self.say(f"kill -9 the database writer, node {node.name}")
        await asyncio.to_thread(node.kill)
        await asyncio.sleep(step["down_s"])
        new = await asyncio.to_thread(self.db.writer)
        await asyncio.to_thread(node.start, False, NODE_SYNCED_S)
        synced = time.monotonic()
        # The longest any send took that was under way at the kill or started while the
        # node was down: what the failover cost a client.
        caught = [
            item.acked_at - item.first_at
            for sender in self.senders
            for item in sender.sent
            if item.acked_at is not None and item.acked_at > t0 and item.first_at < synced
        ]
        result.update(
            node=node.name,
            new_writer=new.name if new is not None else None,
            rejoined_s=round(synced - t0, 2),
            longest_send_s=round(max(caught), 2) if caught else None,
        )
        self.say(
            f"node {node.name} back and synced {synced - t0:.1f} s after the kill; writes went"
            f" to {result['new_writer']}; longest send meanwhile {result['longest_send_s']} s"
        )
        return synced

    async def start_probe(self, host: Host) -> asyncio.subprocess.Process:
        """The minority probe, logged in on `host`'s edge from inside the host."""
        name = f"probe{host.index}x{next(self.probes)}"
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", host.ns, sys.executable, "-m", "loadtest.minority",
            host.ip, str(EDGE_PORT), name, str(PROBE_S),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=host.env,
        )  # fmt: skip
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"minority probe on {host.name} did not start: {line!r}")
        return proc

    async def probe_minority(self, host: Host, probe: asyncio.subprocess.Process) -> dict[str, Any]:
        """Once `host`'s node knows it is cut off (no longer in the primary component),
        the probe sends for PROBE_S; what it got back."""
        assert self.db is not None and probe.stdin is not None and probe.stdout is not None
        node = self.db.nodes[host.index]

        def cut_off() -> bool:
            try:
                return node.status("wsrep_cluster_status") != "Primary"
            except (RuntimeError, OSError, subprocess.SubprocessError):
                return False

        knew = await asyncio.to_thread(galera.wait_for, cut_off, 30, f"{node.name} a minority")
        probe.stdin.write(b"go\n")
        await probe.stdin.drain()
        line = await asyncio.wait_for(probe.stdout.readline(), PROBE_S + 30)
        await asyncio.wait_for(probe.wait(), 10)
        outcome = json.loads(line)
        outcome["node_knew_s"] = round(knew, 2)  # since the cut
        self.say(
            f"{host.name} cut off: its node left the primary component after {knew:.1f} s;"
            f" the probe there tried {outcome['tried']}, acknowledged"
            f" {len(outcome['acknowledged'])}, errors {outcome['errors']}"
        )
        return outcome

    def history_host(self) -> str:
        """Where the stored histories are read at the end: an edge that is up then."""
        return self.cluster.hosts[0].ip

    def on_host(self, index: int) -> list[Member]:
        return [m for m in self.members if m.host == index and m.connected.is_set()]

    async def fault(self, step: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster
        kind = step["kind"]
        if self.db is not None:
            # Each fault meets a whole database: a node that rejoined after the last one
            # has caught up (killing its donor mid-transfer could leave no majority).
            waited = await asyncio.to_thread(self.db.wait_whole, NODE_SYNCED_S)
            if waited > 1:
                self.say(f"database whole again after {waited:.1f} s")
        result: dict[str, Any] = dict(step, at_s=round(time.monotonic() - self.started, 1))
        moves_before = sum(len(m.moves) for m in self.members)
        # (where to put it, the clients of the failed host, when it failed)
        pending: list[tuple[dict[str, Any], list[Member], float]] = []
        if kind == "kill":
            host = cluster.hosts[step["host"]]
            affected, t0 = self.on_host(host.index), time.monotonic()
            self.say(f"kill -9 every process of {host.name} ({len(affected)} clients on it)")
            await asyncio.to_thread(host.kill_all)
            await asyncio.sleep(step["down_s"])
            ready = await asyncio.to_thread(cluster.restart_host, host)
            recovered = time.monotonic()
            self.say(f"{host.name} restarted, ready in {ready:.1f} s")
            result.update(restart_ready_s=round(ready, 2))
            pending.append((result, affected, t0))
        elif kind == "partition":
            host = cluster.hosts[step["host"]]
            probe = await self.start_probe(host) if self.db is not None else None
            affected, t0 = self.on_host(host.index), time.monotonic()
            self.say(f"partition {host.name} for {step['for_s']} s ({len(affected)} clients)")
            await asyncio.to_thread(cluster.partition, host)
            try:
                if probe is not None:
                    result["minority"] = await self.probe_minority(host, probe)
                await asyncio.sleep(max(0.0, t0 + step["for_s"] - time.monotonic()))
                pending.append((result, affected, t0))  # each resumed elsewhere by now
            finally:
                if probe is not None and probe.returncode is None:
                    probe.kill()
                await asyncio.to_thread(cluster.heal, host)
            recovered = time.monotonic()
            self.say(f"{host.name} healed")
        elif kind == "dbkill":
            assert self.db is not None, "dbkill needs --database galera"
            recovered = await self.kill_writer(step, result)
        elif kind == "slow":
            how = await asyncio.to_thread(
                cluster.slow, step["delay_ms"], step["loss_pct"], step.get("rate_kbit", 2000)
            )
            self.say(f"slow network for {step['for_s']} s: {how}")
            result["how"] = how
            try:
                await asyncio.sleep(step["for_s"])
            finally:
                await asyncio.to_thread(cluster.unslow)
            recovered = time.monotonic()
            self.say("network back to normal")
        else:
            per_host = []
            for index in step["order"]:
                host = cluster.hosts[index]
                affected, t0 = self.on_host(index), time.monotonic()
                took = await asyncio.to_thread(cluster.rolling_restart, host)
                per_host.append({"host": index, "restart_s": round(took, 2)})
                pending.append((per_host[-1], affected, t0))
                self.say(f"rolling restart of {host.name}: {took:.1f} s")
            result["hosts"] = per_host
            recovered = time.monotonic()
        result["presence_converged_s"] = await self.wait_presence(recovered)
        # Resume times once every client that was moved is connected again (bounded):
        # one still on its way when its host came back is not yet counted as resumed.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(m.connected.is_set() for m in self.members):
            await asyncio.sleep(0.1)
        for target, affected, t0 in pending:
            target["resume"] = self.resumes(affected, t0)
        self.say(f"presence converged: {result['presence_converged_s']} s after recovery")
        if self.db is not None:
            result["writers"] = await asyncio.to_thread(self.writers)
        result["client_moves"] = sum(len(m.moves) for m in self.members) - moves_before
        # Clients that moved go home: presence must hold through that too (each one's
        # old session closes as its new one opens).
        home_from = time.monotonic()
        await self.send_home()
        result["presence_after_going_home_s"] = await self.wait_presence(home_from)
        return result

    async def main(self, steps: list[dict[str, Any]]) -> dict[str, Any]:
        await self.setup()
        supervisors = [asyncio.create_task(m.supervise()) for m in self.members]
        sending = [asyncio.create_task(s.run()) for s in self.senders]
        faults = []
        try:
            await asyncio.sleep(5)  # steady load before the first fault
            for step in steps:
                faults.append(await self.fault(step))
                await asyncio.sleep(step["gap_s"])
        finally:
            for sender in self.senders:
                sender.stopping = True
            # A send in progress finishes (bounded by its own give-up time).
            await asyncio.wait(sending, timeout=120)
        # Let the last pushes land: until every member has every acknowledged message
        # it should have, or 20 s; then one last sync each (a push lost with no later
        # one to show the gap is found there: counted as "end-sync" arrivals).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if check(self.members, self.senders, {})["missed_by_members"] == 0:
                break
            await asyncio.sleep(0.5)
        for member in self.members:
            member.stopping = True
            if member.chat is not None:
                await member.sync(via="end-sync")
        await asyncio.wait(supervisors, timeout=10)
        for task in supervisors:
            task.cancel()
        host = self.history_host()
        stored = {s.member.name: await stored_history(host, EDGE_PORT, s.member.name)
                  for s in self.senders}  # fmt: skip
        for member in self.members:
            await member.close()
        return {
            "faults": faults,
            "verdict": check(self.members, self.senders, stored),
            "stale_presence_views": self.stale_views,
            # Every member's moves: [lost at s, resumed at s, from host, to host, why].
            "moves": {
                m.name: [
                    [
                        round(x.lost_at - self.started, 2),
                        round(x.resumed_at - self.started, 2) if x.resumed_at else None,
                        x.from_host,
                        x.to_host,
                        x.why,
                    ]
                    for x in m.moves
                ]
                for m in self.members
            },
        }


def fault_lines(report: dict[str, Any]) -> list[str]:
    """A line per fault: how long its clients took to resume, presence, the writers."""
    lines = []
    for fault in report["faults"]:
        resumes = [p["resume"] for p in [fault, *fault.get("hosts", [])] if "resume" in p]
        took = [r["max_s"] for r in resumes if r["max_s"] is not None]
        line = (
            f"{fault['at_s']:7.1f} s {fault['kind']:9} resumed within "
            f"{max(took) if took else '-'} s (target {RESUME_TARGET_S:g}), presence after "
            f"{fault['presence_converged_s']} s / {fault['presence_after_going_home_s']} s"
        )
        if "writers" in fault:
            line += f", services' connections per node {fault['writers']}"
        lines.append(line)
    return lines


def minority_refused(report: dict[str, Any]) -> bool | None:
    """Every minority probe tried at least MIN_PROBE_SENDS sends, none was acknowledged,
    and the database was named as the reason; None when no probe ran."""
    probes = [f["minority"] for f in report["faults"] if "minority" in f]
    if not probes:
        return None
    return all(
        p["tried"] >= MIN_PROBE_SENDS
        and not p["acknowledged"]
        and any(DATABASE_REFUSED in error for error in p["errors"])
        for p in probes
    )


def targets(report: dict[str, Any]) -> dict[str, bool | None]:
    verdict = report["verdict"]
    resumes = []
    presence = []
    for fault in report["faults"]:
        parts = [fault] + fault.get("hosts", [])
        resumes += [p["resume"] for p in parts if "resume" in p]
        presence.append(fault["presence_converged_s"])
        presence.append(fault["presence_after_going_home_s"])
    return {
        "no_lost": verdict["lost"] == 0,
        "no_duplicated": verdict["duplicated"] == 0,
        "order_kept": verdict["out_of_order"] == 0,
        "nothing_unexpected": verdict["unexpected"] == 0,
        "resume_within_10s": all(r["over_target"] == 0 for r in resumes),
        "presence_within_30s": all(p is not None and p <= PRESENCE_TARGET_S for p in presence),
        # A cut-off host with a replicated database: its probe kept trying, nothing was
        # acknowledged, and what refused was the database (None: no host was cut off).
        "minority_refused_writes": minority_refused(report),
    }


def run_schedule(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build the cluster, run the schedule, check; always tear everything down."""
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    replicated = args.database == "galera"
    if replicated and (why := galera.available(agent=True)) is not None:
        raise SystemExit(f"hostfaults --database galera: {why}")
    kinds = tuple(k for k in args.faults.split(",") if k) or tuple(
        k for k in KINDS if replicated or k not in GALERA_ONLY
    )
    if not set(kinds) <= set(KINDS):
        raise SystemExit(f"--faults: each of {', '.join(KINDS)}")
    if not replicated and set(kinds) & set(GALERA_ONLY):
        raise SystemExit(f"--faults {', '.join(GALERA_ONLY)}: only with --database galera")
    steps = schedule(seed, args.hosts, args.minutes, args.partition_s, kinds)
    print(f"hostfaults seed {seed}: " + ", ".join(s["kind"] for s in steps), flush=True)
    started = time.monotonic()
    with Cluster(args.hosts, workdir) as cluster:
        cluster.build_network()
        db = HostGalera(cluster) if replicated else HostDatabase(cluster)
        try:
            cluster.start(db.start())
            run = Run(cluster, args, db if isinstance(db, HostGalera) else None)
            report = run_async(run.main(steps))
        except BaseException:
            with contextlib.suppress(Exception):  # the run's own error is the one to see
                db.remove()  # first: its logs join the hosts'
            print(cluster.logs(), flush=True)
            raise
        finally:
            db.remove()
    report.update(
        scenario="hostfaults",
        seed=seed,
        replay=(
            f"python -m loadtest hostfaults --seed {seed} --minutes {args.minutes:g} "
            f"--hosts {args.hosts} --members {args.members} --senders {args.senders} "
            f"--rate {args.rate:g} --partition-s {args.partition_s:g} --database {args.database}"
            f" --faults {','.join(kinds)}"
        ),
        commit=_commit(),
        when=time.strftime("%Y-%m-%d %H:%M:%S"),
        machine={"cores": os.cpu_count()},
        cluster={
            "hosts": args.hosts,
            "members": args.members,
            "senders": args.senders,
            "rate_per_sender": args.rate,
            "database": (
                "a Galera node and a writer proxy (HAProxy) on each host"
                if replicated
                else "one MariaDB in the root namespace, on the bridge"
            ),
        },
        duration_s=round(time.monotonic() - started, 1),
        schedule=steps,
        log=run.log,
    )
    report["targets"] = targets(report)
    return report


def run(args: argparse.Namespace) -> None:
    if (why := available()) is not None:
        raise SystemExit(f"hostfaults: {why}")
    private_folder(args.out)
    with tempfile.TemporaryDirectory(prefix="hostfaults-") as tmp:
        try:
            report = run_schedule(args, Path(tmp))
        finally:
            # Every process's log, for a finding to be looked into (INFO: no bodies).
            logs = args.logs
            shutil.rmtree(logs, ignore_errors=True)
            logs.mkdir(parents=True)
            for log in Path(tmp).glob("h*-*.log"):
                shutil.copy(log, logs / log.name)
    path = args.out / "hostfaults.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("seed", "targets")}, indent=1))
    for line in fault_lines(report):
        print(line)
    v = report["verdict"]
    print(
        f"acknowledged {v['acknowledged']}, lost {v['lost']}, duplicated {v['duplicated']}, "
        f"out of order {v['out_of_order']}, unexpected {v['unexpected']}, "
        f"missed by members {v['missed_by_members']} -> {path}"
    )
