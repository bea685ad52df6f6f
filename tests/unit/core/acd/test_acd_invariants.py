"""Randomised sequences of PBX events and agent actions against ACD invariants.

A small fake PBX model tracks which legs exist; hypothesis drives calls,
answers, hangups (any outcome), time, pause/login/logout, device states and
PBX down/up/restart.  After every step:

* an agent (max_concurrent=1) never holds more than one offer or call;
* no Hangup/Bridge ever names a leg that was never created, nor one twice;
* every AgentOffered is closed by exactly one CallerConnected or RINGNOANSWER;
* a call is ended at most once, and at the end every call that entered
  is ended exactly once;
* positions in the waiting view are 1..n per queue and node.
"""

from collections import Counter, defaultdict

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from acd_harness import A, Q, Rig
from callcenterd.core import commands as cmd
from callcenterd.core import facts as f
from callcenterd.core.acd import Strategy
from callcenterd.pbx.api import DeviceStatus, Outcome, PbxSnapshot

AGENTS = ["a1", "a2", "a3", "a4"]


class AcdMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.rig = None

    @initialize(strategy=st.sampled_from(list(Strategy)), other=st.sampled_from(list(Strategy)),
          wrapup=st.sampled_from([0, 5]), max_wait=st.sampled_from([0, 40]))
    def setup(self, strategy, other, wrapup, max_wait):
        if self.rig is not None:
            return
        queues = [
            Q("sales", strategy=strategy, ring_time=10, retry_delay=3, wrapup_time=wrapup, max_wait=max_wait,
              overflow_queue="support", announce_every=15, skill_relax=((10, 5),)),
            Q("support", strategy=other, ring_time=8, max_callers=3, join_empty=False, leave_empty=True,
              overflow_destination="vm,s,1", progressive_every=4),
        ]
        agents = [
            A("a1", queues=("sales",), skills={"fr": 8}, max_missed=2),
            A("a2", queues=("sales", "support"), skills={"fr": 3}),
            A("a3", queues=("support",), penalty={"support": 1}),
            A("a4", queues=("sales", "support"), node="pbx2"),
        ]
        self.rig = Rig(queues, agents)
        self.ncalls = 0
        self.live = set()  # legs that exist in the fake PBX
        self.created = set()  # every leg ever created
        self.hung_by_acd = Counter()
        self.answered = set()
        self.offers = {}  # agent leg -> (call_id, agent)
        self.connected = {}  # call_id -> (agent, leg)
        self.entered = set()
        self.ended = Counter()
        self.call_node = {}
        self.leg_node = {}
        self.down = set()
        self.absorb(self.rig.out)

    # -------------------------------------------------------------- model
    def absorb(self, outputs):
        for o in outputs:
            if isinstance(o, cmd.Originate):
                leg = o.request.leg_id
                assert leg not in self.created
                self.created.add(leg)
                self.leg_node[leg] = o.node
                if o.node not in self.down:
                    self.live.add(leg)
            elif isinstance(o, cmd.Hangup):
                assert o.leg_id in self.created, f"Hangup of a leg never created: {o.leg_id}"
                self.hung_by_acd[o.leg_id] += 1
                assert self.hung_by_acd[o.leg_id] == 1, f"{o.leg_id} hung up twice"
                self.live.discard(o.leg_id)
            elif isinstance(o, cmd.Redirect):
                assert o.leg_id in self.created
                self.live.discard(o.leg_id)
            elif isinstance(o, cmd.Bridge):
                assert o.leg_a in self.live and o.leg_b in self.live
            elif isinstance(o, f.AgentOffered):
                self.offers[o.leg_id] = (o.call_id, o.agent)
            elif isinstance(o, f.CallerConnected):
                assert self.offers.pop(o.agent_leg_id) == (o.call_id, o.agent)
                self.connected[o.call_id] = (o.agent, o.agent_leg_id)
            elif isinstance(o, f.AgentRingNoAnswer):
                match = [leg for leg, v in self.offers.items() if v == (o.call_id, o.agent)]
                assert len(match) == 1, f"RINGNOANSWER without exactly one open offer: {o}"
                del self.offers[match[0]]
            elif isinstance(o, f.CallCompleted):
                assert self.connected.pop(o.call_id)[0] == o.agent
            elif isinstance(o, f.CallerEnqueued):
                self.entered.add(o.call_id)
            elif isinstance(o, f.CallEnded):
                self.ended[o.call_id] += 1
                assert self.ended[o.call_id] == 1, f"{o.call_id} ended twice"
                if o.outcome == "pbx-restart":
                    self.connected.pop(o.call_id, None)
                assert not any(c == o.call_id for c, _ in self.offers.values()), "ended with an open offer"

    def do(self, outputs):
        self.absorb(outputs)

    # -------------------------------------------------------------- rules
    @rule(queue=st.sampled_from(["sales", "support"]), prio=st.integers(0, 2), node=st.sampled_from(["pbx1", "pbx2"]),
          skill=st.sampled_from([None, {"fr": 5}]))
    def call(self, queue, prio, node, skill):
        if self.rig is None:
            return
        self.ncalls += 1
        cid = f"c{self.ncalls}"
        leg = f"cleg-{cid}"
        self.created.add(leg)
        if node not in self.down:
            self.live.add(leg)
        self.call_node[cid] = node
        self.do(self.rig.acd.call_waiting(cid, leg, node, queue, priority=prio, skills=skill))

    @rule(data=st.data())
    def answer(self, data):
        if self.rig is None:
            return
        ringing = sorted(leg for leg in self.offers if leg in self.live)
        if ringing:
            leg = data.draw(st.sampled_from(ringing))
            self.answered.add(leg)
            self.do(self.rig.acd.leg_answered(leg))

    @rule(data=st.data(), outcome=st.sampled_from(list(Outcome)))
    def hangup(self, data, outcome):
        if self.rig is None:
            return
        pool = sorted(self.live | set(self.hung_by_acd))  # late events for legs we dropped are legal too
        if pool:
            leg = data.draw(st.sampled_from(pool))
            self.live.discard(leg)
            if leg in self.answered or leg.startswith("cleg-"):
                outcome = Outcome.ANSWERED if leg in self.answered else outcome
            self.do(self.rig.acd.leg_hung_up(leg, outcome))

    @rule(seconds=st.sampled_from([0.5, 3, 9, 20, 45]))
    def advance(self, seconds):
        if self.rig is not None:
            self.do(self.rig.advance(seconds))

    @rule(agent=st.sampled_from(AGENTS), action=st.sampled_from(["login", "logout", "pause", "unpause"]))
    def agent_action(self, agent, action):
        if self.rig is None:
            return
        acd = self.rig.acd
        if action == "pause":
            if acd.agent_state(agent)["state"] == "logged-out":
                return
            try:
                self.do(acd.agent_pause(agent, "break"))
            except Exception as err:  # logout pending: refused with a clear error
                assert "not logged in" in str(err)
        else:
            self.do(getattr(acd, "agent_" + action)(agent))

    @rule(agent=st.sampled_from(AGENTS), status=st.sampled_from(list(DeviceStatus)))
    def device(self, agent, status):
        if self.rig is not None:
            self.do(self.rig.acd.device_state(f"PJSIP/{agent}", status))

    @rule(node=st.sampled_from(["pbx1", "pbx2"]), restart=st.booleans())
    def bounce(self, node, restart):
        if self.rig is None:
            return
        self.down.add(node)
        self.do(self.rig.acd.pbx_down(node))
        if restart:
            # every leg on that node is gone
            self.live = {leg for leg in self.live if self._node_of(leg) != node}
        self.down.discard(node)
        self.do(self.rig.acd.pbx_up(node, PbxSnapshot(legs=frozenset(self.live), restarted=restart)))

    def _node_of(self, leg):
        if leg.startswith("cleg-"):
            return self.call_node[leg[5:]]
        return self.leg_node[leg]

    # --------------------------------------------------------- invariants
    @invariant()
    def one_thing_per_agent(self):
        if self.rig is None:
            return
        load = Counter(agent for _c, agent in self.offers.values())
        load.update(agent for agent, _leg in self.connected.values())
        assert all(n <= 1 for n in load.values()), load
        for row in self.rig.acd.agents_view():
            assert len(row["call_ids"]) == load.get(row["agent"], 0)

    @invariant()
    def no_forgotten_agent_leg_keeps_ringing(self):
        if self.rig is None:
            return
        tracked = set(self.offers) | {leg for _a, leg in self.connected.values()}
        orphans = {leg for leg in self.live if not leg.startswith("cleg-")} - tracked
        assert not orphans, f"agent legs left up in the PBX but unknown to the ACD: {orphans}"

    @invariant()
    def positions_are_dense(self):
        if self.rig is None:
            return
        groups = defaultdict(list)
        for w in self.rig.acd.waiting_view():
            groups[(w["node"], w["queue"])].append(w["position"])
        for positions in groups.values():
            assert sorted(positions) == list(range(1, len(positions) + 1))

    def teardown(self):
        if self.rig is None:
            return
        for node in ("pbx1", "pbx2"):
            self.do(self.rig.acd.pbx_down(node))
            self.do(self.rig.acd.pbx_up(node, PbxSnapshot(restarted=True)))
        assert not self.offers and not self.connected
        started = {f"c{i}" for i in range(1, self.ncalls + 1)}
        assert {c for c in started if self.ended[c] != 1} == set()
        assert self.rig.acd.waiting_view() == []


AcdMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None, derandomize=True,
                                        suppress_health_check=[HealthCheck.too_slow])
TestAcdInvariants = AcdMachine.TestCase
