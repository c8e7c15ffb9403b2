"""linebox's SIP routes, run by Kamailio's embedded Python (KEMI).

This is glue: it gathers a call's facts, asks `appliance.routing.decide` what
to do, and turns the decision into KSR calls. Policy lives in `appliance`.

Kamailio runs one interpreter per process and a call's routes run in several
of them (the request in one worker, a failure route in another or in the
timer process), so nothing about a call is kept in Python objects:
per-transaction state is in AVPs, per-call state in the `calls` htable.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import site
import time
import traceback
from collections.abc import Iterator, Mapping
from zoneinfo import ZoneInfo

# Kamailio embeds Debian's libpython, which knows nothing of linebox's venv.
if os.environ.get("LINEBOX_SITE_PACKAGES"):
    site.addsitedir(os.environ["LINEBOX_SITE_PACKAGES"])

import KSR
import msgspec

from appliance import settings
from appliance.media import recording, stock
from appliance.media.ng import NgClient, NgError
from appliance.media.prompts import PromptError
from appliance.media.sdp import placeholder_sdp
from appliance.numbers import preload, region_of
from appliance.routing import ivr
from appliance.routing.decide import (
    MENU,
    PIN,
    REJECT,
    VOICEMAIL,
    Decision,
    Facts,
    Target,
    decide,
    decide_destination,
)
from appliance.routing.plan import GroupPlan, Plan, PlanFile, TrunkPlan
from appliance.sip import bans
from appliance.sip.guard import Trusted, is_scanner
from appliance.worker import cdr, sticky
from appliance.worker.journal import Journal

# KEMI return codes
OK = 1

RTP_OFFER = "replace-origin replace-session-connection ICE=remove RTP/AVP"
# port-latching: a caller whose media was first answered elsewhere keeps the
# same rtpengine port when the real answer arrives (NAT-friendly). No
# transport in the answer: the offerer gets back the one it offered, so a
# phone that offered SRTP (RTP/SAVP, SDES) keeps it on its leg while the
# other leg is plain RTP/AVP.
RTP_ANSWER = "replace-origin replace-session-connection ICE=remove port-latching"
# The trunk takes only what its `codecs` name (G.711 unless told): every
# offer also lists them (when the phone offered only Opus or G.722), and
# rtpengine transcodes only when the answer picks a codec the offerer did
# not offer.
TRUNK_CODECS = ("PCMA", "PCMU")

# A phone behind NAT (nathelper's nat_uac_test): its Contact is a private
# address (1), its Via's address (2) or port (16) is not where the request
# came from. A reply is tested on its Contact only.
NAT_TEST = 1 | 2 | 16
NAT_REPLY_TEST = 1
# Branch flags saved with a NATed phone's contact (kamailio.cfg: usrloc's
# nat_bflag, nathelper's sipping_bflag: the contact gets OPTIONS keep-alives).
NAT_FLAG = 6
SIPPING_FLAG = 7

# Final replies of one destination after which the next one is tried.
NEXT_ON = frozenset({408, 480, 486, 487, 600, 603, 404, 500, 502, 503, 504})
BUSY_CODES = frozenset({486, 600, 603})
# The longest a caller may spend in menus and PIN entry before tm gives up.
MAX_HOLD_MS = 300_000
# A trunk gateway that has not answered an INVITE at all (not even 100
# Trying) within this is taken for down: the call goes to the next gateway.
GATEWAY_SILENCE_MS = 4_000
# A gateway's own failures (not the called number's): the next gateway may do.
GATEWAY_FAILURES = frozenset({500, 502, 503, 504})
# How long an OPTIONS probe may take to fail (tm's fr_timer, 5 s) and more.
GATEWAY_PROBE_SECONDS = 6

log = logging.getLogger("linebox.kemi")


class KamailioLogHandler(logging.Handler):
    """stdlib logging into Kamailio's log, with the Call-ID of the message."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + "\n"
        except Exception:
            return
        if record.levelno >= logging.ERROR:
            KSR.err(text)
        elif record.levelno >= logging.WARNING:
            KSR.warn(text)
        elif record.levelno >= logging.INFO:
            KSR.info(text)
        else:
            KSR.dbg(text)


class CallState(msgspec.Struct):
    """What a call's transaction carries between the request and failure
    routes (as the AVP `lb_state`)."""

    ring: list[Target]
    busy: list[Target]
    no_answer: list[Target]
    strategy: str = "sequential"
    tenant: str = ""
    outbound: bool = False
    """Counted in the tenant's calls out through the trunk."""
    out_trunk: str = ""
    """And in that trunk's calls out (its `max_calls`)."""
    phase: str = "ring"
    """`ring`, then `busy` or `no_answer` once a fallback chain takes over."""
    forwards: int = 0
    """Fallback destinations tried so far (capped at `max_forwards`)."""
    max_forwards: int = 3
    last_code: int = 0
    any_busy: bool = False
    branches: list[Target] = []
    """The destination of each tm branch, by branch index: a reply's
    $T_branch_idx says who answered, however many phones ring at once."""
    all_busy: bool = True
    """Every destination rung so far answered busy (a queue's condition)."""
    queue_wait: int = 0
    """Seconds the caller may wait in the group's queue (0: no queue)."""
    queue_music: str = ""
    queue_key: str = ""
    """`tenant:group:name`: callers of one queue are served in turn."""
    queue_ring: list[Target] = []
    """The group's members, rung again each time the caller's turn comes."""
    queued_at: float = 0.0
    ticket: int = 0
    gateway: int = 0
    """The trunk gateway the call out tries (its index in the trunk's
    `gateways`): a gateway that does not answer hands the call to the next."""


class QueuedCall(msgspec.Struct):
    """A caller waiting in a group's queue (htable `ivr`, key
    `queue:<Call-ID>`): the INVITE is suspended in its failure route while
    music plays; `trying` while the members ring again for it."""

    index: int
    label: int
    key: str
    ticket: int
    trying: bool = False


class CallFacts(msgspec.Struct, omit_defaults=True):
    """What the `calls` htable keeps for a call's later requests (BYE)."""

    kind: str
    tenant: str = ""
    hotline: str = ""
    caller: str = ""
    """National form: the key of the caller's sticky memory."""
    caller_tag: str = ""
    day: str = ""
    """The hotline's local date when the call came in (daily counters)."""
    strategy: str = ""
    outbound: bool = False
    out_trunk: str = ""
    answered_at: float = 0.0
    early_tag: str = ""
    """The to-tag of the ringback the caller hears (`em-<caller tag>`): the
    agent's answer re-anchors that same media, so the caller's port stays."""
    early_sdp: str = ""
    """The SDP of the ringback's 183, given to phones' own early media too."""
    record: bool = False
    voicemail: bool = False
    """Answered by the appliance to take a message (语音信箱)."""
    answered_by: str = ""
    answered_kind: str = ""
    agent_id: str = ""
    survey: bool = False
    """The answering group asks callers for a score when the agent hangs up."""
    caller_contact: str = ""
    caller_from: str = ""
    called_to: str = ""
    """For a call linebox answered itself (voicemail): where and how to send
    the caller a BYE when the message reaches its maximum length."""


class Survey(msgspec.Struct):
    """A caller being asked for a score (满意度调查) after the agent hung up
    (htable `ivr`, key `survey:<Call-ID>`). The agent's BYE was answered
    here; the caller gets it, as sent, once the survey is over."""

    caller_tag: str
    ruri: str
    from_: str
    to: str
    cseq: int
    generation: int = 0
    scored: bool = False


class CallerFacts(msgspec.Struct, frozen=True):
    """What routing needs to know of a caller again after a menu or PIN."""

    called: str
    caller: str
    trunk: str = ""
    caller_extension: str = ""
    day: str = ""


class HeldCall(msgspec.Struct):
    """A call held in a menu or PIN entry (htable `ivr`, by Call-ID): its
    INVITE is suspended (t_suspend) in early media while the caller keys;
    nothing has rung yet, and nothing is billed (the carrier bills from the
    200 OK)."""

    index: int
    label: int
    caller_tag: str
    who: CallerFacts
    prompting: ivr.Prompting
    generation: int = 0
    """Bumped by every step: a timer set for an older step is stale."""
    outcome: Decision | None = None
    """Set once the caller has chosen: the continue route carries it out."""
    refusal: ivr.Step | None = None
    cancelled: bool = False


_state_enc = msgspec.json.Encoder()
_state_dec = msgspec.json.Decoder(CallState)
_facts_dec = msgspec.json.Decoder(CallFacts)
_held_dec = msgspec.json.Decoder(HeldCall)
_dtmf_dec = msgspec.json.Decoder(dict[str, object])
_survey_dec = msgspec.json.Decoder(Survey)
_queued_dec = msgspec.json.Decoder(QueuedCall)
QUEUE_RETRY = 3
"""Seconds between two tries of the members for the caller first in line."""
SURVEY_WAIT = 8
"""Seconds a caller has to score once the survey question has played."""


def ended(event: cdr.CallEvent, status: str, code: int, cause: str) -> cdr.CallEvent:
    """The one event of a call that ends before it rings anyone."""
    return msgspec.structs.replace(event, type=cdr.END, status=status, sip_code=code, cause=cause)


class AnsweredToday(Mapping[str, int]):
    """Calls each destination answered today, read from the shared `agents`
    htable only for the destinations the decision asks about."""

    def __init__(self, day: str) -> None:
        self.day = day

    def __getitem__(self, member: str) -> int:
        return int(KSR.htable.sht_get("agents", f"{self.day}:{member}") or 0)

    def get(self, member: str, default: int = 0) -> int:  # type: ignore[override]
        return self[member] or default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@functools.lru_cache(maxsize=64)
def info_digit(content_type: str, body: str) -> str:
    """The key a SIP INFO carries, or '': application/dtmf-relay
    ("Signal=5\\r\\nDuration=160") or application/dtmf ("5"). Some phones send
    * and # as 10 and 11, their RFC 4733 event numbers."""
    kind = content_type.partition(";")[0].strip().lower()
    if kind == "application/dtmf-relay":
        fields = (line.partition("=") for line in body.splitlines())
        signal = next((v for k, _, v in fields if k.strip().lower() == "signal"), "")
    elif kind == "application/dtmf":
        signal = body
    else:
        return ""
    signal = signal.strip()
    if signal in ("10", "11"):
        return ivr.DIGITS[int(signal)]
    return signal if len(signal) == 1 and signal in ivr.DIGITS else ""


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def gateway_for(trunk: TrunkPlan, start: int = 0) -> int:
    """The first of the trunk's gateways from `start` on that answers
    Kamailio's OPTIONS probes (dispatcher); `start` when none is known to."""
    for index in range(start, len(trunk.gateways)):
        uri = trunk.probe_uri(trunk.gateways[index])
        if KSR.dispatcher.ds_is_active_uri(trunk.setid, uri) > 0:
            return index
    return min(start, len(trunk.gateways) - 1)


def offer_flags(plan: Plan | None = None) -> str:
    """rtpengine's flags for the offer of the request at hand: a phone behind
    NAT gets its media at the address its request came from, not at the
    private one in its SDP, from the first packet on; the trunk's codecs are
    offered too, transcoded where the phone has none of them."""
    codecs = plan.trunks[0].codecs if plan is not None and plan.trunks else TRUNK_CODECS
    flags = RTP_OFFER + "".join(f" codec-transcode={codec}" for codec in codecs)
    if KSR.nathelper.nat_uac_test(NAT_TEST) > 0:
        return flags + " SIP-source-address"
    return flags


@contextlib.contextmanager
def held_lock(call_id: str) -> Iterator[None]:
    """One process at a time changes a held call: a digit (a UDP worker), a
    timer (the rtimer process) and a CANCEL may arrive together. The htable
    slot lock is re-entrant within a process."""
    KSR.htable.sht_lock("ivr", call_id)
    try:
        yield
    finally:
        KSR.htable.sht_unlock("ivr", call_id)


def mod_init() -> Linebox:
    """Runs once in Kamailio's main process, before it forks: what is loaded
    here (the geocoding data) the workers share."""
    preload()
    linebox = Linebox()
    linebox.restore_bans()  # into shared memory, once, before any packet
    return linebox


def guarded(route):  # type: ignore[no-untyped-def]
    """An unhandled exception in a route would leave the message unanswered:
    log the traceback, and answer a request (but an ACK) with 500, so no
    caller is left hanging."""

    def wrapper(self, msg, *args):  # type: ignore[no-untyped-def]
        try:
            return route(self, msg, *args)
        except Exception:
            log.error("%s failed: %s", route.__name__, traceback.format_exc())
            if route.__name__ == "ksr_request_route" and not KSR.is_ACK():
                KSR.sl.send_reply(500, "Server Internal Error")
            return OK

    wrapper.__name__ = route.__name__
    return wrapper


class Linebox:
    def __init__(self) -> None:
        self.settings = settings.get()
        self.plans = PlanFile(self.settings.paths.plan_file)
        self.rank = 0
        self._trusted: tuple[str, Trusted] | None = None
        self._gateways_version = ""
        self._gateways_watch_at = 0.0
        self._gateways_up: dict[tuple[str, str], bool] = {}
        self.ng = NgClient(port=self.settings.media.ng_port, timeout=1.0)
        self.journal = Journal(self.settings.paths.data_dir / "events")
        self.contact = f"{self.settings.sip_advertised}:{self.settings.sip.port}"

    def child_init(self, rank: int) -> int:
        self.rank = rank
        handler = KamailioLogHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        return 0

    # ------------------------------------------------------------ request
    @guarded
    def ksr_request_route(self, msg) -> int:  # type: ignore[no-untyped-def]
        source = KSR.pv.get("$si")
        if KSR.pv.get("$Rp") == self.settings.media.dtmf_port:
            return OK  # the DTMF socket takes rtpengine's reports, never SIP
        if KSR.htable.sht_get("bans", source) is not None:
            return OK  # banned: no answer at all
        if is_scanner(KSR.pv.get("$ua") or ""):
            self.ban(source, "a scanner's User-Agent")
            return OK
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.send_reply(483, "Too Many Hops")
            return OK
        if KSR.sanity.sanity_check_defaults() < 0:
            return OK  # sanity has answered (or dropped) the bad message
        if KSR.nathelper.nat_uac_test(NAT_TEST) > 0:
            # A phone behind NAT: replies go back where the request came from,
            # and so do requests to its Contact (a REGISTER's is kept as sent,
            # with the source saved beside it: route_register).
            KSR.force_rport()
            if not KSR.is_REGISTER():
                KSR.nathelper.fix_nated_contact()
        if KSR.is_CANCEL():
            # tm answers the CANCEL of a transaction it knows (and 487 to a
            # held INVITE) inside t_check_trans.
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            self.cancel_held(KSR.pv.get("$ci"))
            self.cancel_queued(KSR.pv.get("$ci"))
            return OK
        if KSR.is_INFO() and self.route_dtmf_info():
            return OK
        if KSR.siputils.has_totag() > 0:
            return self.route_in_dialog()
        if KSR.is_ACK():
            # An ACK outside a dialog belongs to a negative reply: tm absorbs it.
            KSR.tm.t_check_trans()
            return OK
        if self.flooding(source):
            return OK
        if KSR.tmx.t_precheck_trans() > 0:
            KSR.tm.t_check_trans()  # a retransmission of a request in progress
            return OK
        if KSR.tm.t_check_trans() == 0:
            return OK
        if KSR.is_OPTIONS() and not KSR.pv.get("$rU"):
            KSR.hdr.append_to_reply("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER\r\n")
            KSR.sl.send_reply(200, "OK")
            return OK
        if KSR.is_REGISTER():
            return self.route_register()
        if KSR.is_INVITE():
            return self.route_invite()
        KSR.hdr.append_to_reply("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER\r\n")
        KSR.sl.send_reply(405, "Method Not Allowed")
        return OK

    def authenticate(self, plan: Plan) -> str:
        """The extension that authenticated this request, or '' after a
        challenge was sent. Unknown and known users with a wrong password get
        the same answer, so nobody can list the extensions."""
        user = KSR.pv.get("$au") or ""
        extension = plan.extensions.get(user)
        # An unknown user is checked against a secret nobody knows, so the
        # outcome and the time taken are those of a wrong password.
        ha1 = extension.ha1 if extension else os.urandom(16).hex()
        if user and KSR.auth.pv_auth_check(plan.domain, ha1, 1, 1) > 0:
            KSR.auth.consume_credentials()
            return user
        if user:
            source = KSR.pv.get("$si")
            log.info("authentication failed for %s from %s", user, source)
            guard = self.settings.security
            window = int(time.time()) // guard.auth_window
            if KSR.htable.sht_inc("authfail", f"{source}:{window}") >= guard.auth_failures:
                self.ban(source, f"{guard.auth_failures} failed authentications")
                return ""
        KSR.auth.auth_challenge(plan.domain, 1)
        return ""

    # ------------------------------------------------------------ defences
    @guarded
    def ksr_received(self, msg, *_event) -> int:  # type: ignore[no-untyped-def]
        """Every message before Kamailio parses it: a banned source's are
        dropped unread, so its junk is neither parsed nor logged."""
        if KSR.htable.sht_get("bans", KSR.pv.get("$rcv(srcip)")) is not None:
            KSR.set_drop()
        return OK

    def restore_bans(self) -> None:
        """The bans still in force when Kamailio stopped, back in the table."""
        path, now = self.settings.paths.bans_file, time.time()
        try:
            in_force = bans.load(path, now)
            bans.rewrite(path, in_force)
        except OSError as exc:
            log.error("could not restore the bans from %s: %s", path, exc)
            return
        for address, until in in_force.items():
            KSR.htable.sht_setxi("bans", address, 1, max(1, int(until - now)))
        if in_force:
            log.warning("%d bans restored from %s", len(in_force), path)

    def trusted(self) -> Trusted:
        plan = self.plans.current()
        if self._trusted is None or self._trusted[0] != plan.version:
            sources = [source for trunk in plan.trunks for source in trunk.sources]
            networks = [self.settings.security.trusted, *(s for s in sources if "/" in s)]
            addresses = (s for s in sources if "/" not in s)
            self._trusted = (plan.version, Trusted(",".join(networks), addresses))
        return self._trusted[1]

    def flooding(self, source: str) -> bool:
        """Count an out-of-dialog request from an untrusted source; ban the
        source once it sends more than its share within the window."""
        if (source, KSR.pv.get("$sp")) in self.trusted():
            return False
        guard = self.settings.security
        window = int(time.time()) // guard.flood_window
        if KSR.htable.sht_inc("flood", f"{source}:{window}") > guard.flood_requests:
            self.ban(source, f"more than {guard.flood_requests} requests in {guard.flood_window} s")
            return True
        return False

    def ban(self, source: str, why: str) -> None:
        """No answer to `source` for `ban_seconds`; logged once per ban, so a
        flood of junk cannot flood the log."""
        if KSR.htable.sht_get("bans", source) is None:
            seconds = self.settings.security.ban_seconds
            log.warning("banning %s for %d s: %s", source, seconds, why)
            KSR.htable.sht_setxi("bans", source, 1, seconds)
            try:
                bans.record(self.settings.paths.bans_file, source, time.time() + seconds)
            except OSError as exc:
                log.error("could not record the ban of %s: %s", source, exc)

    def route_register(self) -> int:
        plan = self.plans.current()
        if not self.authenticate(plan):
            return OK
        if KSR.nathelper.nat_uac_test(NAT_TEST) > 0:
            # Calls go to the address and port this REGISTER came from (the
            # contact's `received`); the router's mapping is kept open by
            # nathelper's OPTIONS pings.
            KSR.nathelper.fix_nated_register()
            KSR.setbflag(NAT_FLAG)
            KSR.setbflag(SIPPING_FLAG)
        if KSR.registrar.save("location", 0) < 0:
            KSR.sl.sl_reply_error()
        return OK

    def route_invite(self) -> int:
        plan = self.plans.current()
        source, port = KSR.pv.get("$si"), KSR.pv.get("$sp")
        trunk = plan.trunk_for_source(source, port)
        caller_extension = ""
        if trunk is None:
            caller_extension = self.authenticate(plan)
            if not caller_extension:
                return OK
        called = plan.hotline_for(KSR.pv.get("$rU") or "", trunk)
        caller = KSR.pv.get("$fU") or ""
        now = dt.datetime.now(dt.UTC)
        hotline = plan.hotlines.get(called)
        day = now.astimezone(_zone(hotline.timezone)).strftime("%Y%m%d") if hotline else ""
        who = CallerFacts(
            called=called,
            caller=caller,
            trunk=trunk.name if trunk else "",
            caller_extension=caller_extension,
            day=day,
        )
        facts = self.facts_of(plan, who)
        decision = decide(plan, facts, now, explain=False)
        call_id = KSR.pv.get("$ci")
        log.info("call %s: %s → %s %s", call_id, caller, called, decision.trace[-1])

        event = cdr.CallEvent(
            call_id=call_id,
            type=cdr.START,
            at=time.time(),
            kind="hotline" if decision.hotline else "internal",
            tenant=decision.tenant,
            hotline=decision.hotline,
            caller=decision.caller or caller,
            caller_area_code=facts.region.area_code,
            caller_region=" ".join(n for n in (facts.region.province, facts.region.city) if n),
            called=called,
            route=decision.route or decision.target,
        )
        if decision.action == REJECT:
            if decision.tenant:
                status = cdr.status_for_failure(decision.sip_code)
                self.emit(ended(event, status, decision.sip_code, decision.reason))
            KSR.sl.send_reply(decision.sip_code, decision.reason)
            return OK
        if decision.action == VOICEMAIL:
            return self.take_message(event, decision)
        if decision.action in (MENU, PIN):
            return self.hold_for_keys(plan, decision, event, who)
        return self.start_ringing(plan, decision, event, day)

    @staticmethod
    def facts_of(plan: Plan, who: CallerFacts, pin_ok: bool = False) -> Facts:
        """The routing facts of a new call (again, after a menu or a PIN)."""
        hotline = plan.hotlines.get(who.called)
        sticky_agent, sticky_at = "", 0.0
        if hotline is not None:
            remembered = KSR.htable.sht_get("sticky", sticky.key(hotline.tenant, who.caller))
            sticky_agent, sticky_at = sticky.parse(remembered)
        return Facts(
            called=who.called,
            caller=who.caller,
            region=region_of(who.caller) if hotline and who.trunk else region_of(""),
            trunk=who.trunk,
            caller_extension=who.caller_extension,
            sequence=(KSR.htable.sht_inc("counters", "seq:" + who.called) - 1) if hotline else 0,
            answered_today=AnsweredToday(who.day),
            sticky_agent=sticky_agent,
            sticky_at=sticky_at,
            pin_ok=pin_ok,
        )

    def start_ringing(self, plan: Plan, decision: Decision, event: cdr.CallEvent, day: str) -> int:
        call_id = event.call_id
        has_sdp = KSR.textops.has_body_type("application/sdp") > 0
        if has_sdp and KSR.rtpengine.rtpengine_offer(offer_flags(self.plans.current())) < 0:
            log.error("call %s: rtpengine refused the offer", call_id)
            self.emit(ended(event, "failed", 503, "media relay unavailable"))
            KSR.sl.send_reply(503, "Service Unavailable")
            return OK
        KSR.rr.record_route()
        caller_tag = KSR.pv.get("$ft") or ""
        facts = CallFacts(
            kind=event.kind,
            tenant=decision.tenant,
            hotline=decision.hotline,
            caller=decision.caller,
            caller_tag=caller_tag,
            day=day,
            strategy=decision.strategy,
            record=decision.record,
        )
        # A group with a queue needs the caller's media in hand (early media)
        # to play the music later: it rings with the stock ring tone.
        ringback = decision.ringback or (
            self.stock_prompt("ring-tone") if decision.queue_wait else ""
        )
        if ringback and has_sdp:
            facts.early_tag, facts.early_sdp = self.play_ringback(call_id, caller_tag, ringback)
        KSR.htable.sht_sets("calls", call_id, msgspec.json.encode(facts).decode())
        self.emit(event)
        self.ring(plan, decision)
        return OK

    def ring(self, plan: Plan, decision: Decision, held: bool = False) -> None:
        """Ring the decision's destinations (its fallback chains after them);
        answer the caller 480 when none can be rung. A `held` INVITE (after a
        menu) has tm's blind branch of t_suspend as its branch 0."""
        state = CallState(
            branches=[Target("held")] if held else [],
            queue_wait=decision.queue_wait,
            queue_music=decision.queue_music,
            queue_key=f"{decision.tenant}:{decision.target}",
            queue_ring=list(decision.ring) if decision.queue_wait else [],
            ring=list(decision.ring),
            busy=list(decision.busy),
            no_answer=list(decision.no_answer),
            strategy=decision.strategy,
            tenant=decision.tenant,
            max_forwards=plan.max_forwards,
        )
        if not self.relay_next(plan, state):
            self.end_failed_call(state.last_code or 480, "nothing could be rung")
            KSR.sl.send_reply(480, "Temporarily Unavailable")

    def play_ringback(self, call_id: str, caller_tag: str, prompt: str) -> tuple[str, str]:
        """Answer the caller's media with rtpengine (early media) and loop the
        hotline's ringback prompt until someone answers (企业彩铃). Returns
        the placeholder tag and the 183's SDP, or ('', '') when the caller
        hears the plain ring tone."""
        early_tag, sdp = self.early_media(call_id, caller_tag)
        if early_tag:
            self.play(call_id, caller_tag, prompt, repeat=True)
        return early_tag, sdp

    def early_media(self, call_id: str, caller_tag: str) -> tuple[str, str]:
        """Answer the caller's media with a placeholder (rtpengine, to-tag
        `em-<caller tag>`) and send 183 with that SDP: the caller now hears
        whatever rtpengine plays. Returns the tag and the SDP, or ('', '')."""
        early_tag = f"em-{caller_tag}"
        offered = KSR.pv.get("$rb") or ""
        try:
            answer = self.ng.command(
                "answer",
                **{
                    "call-id": call_id,
                    "from-tag": caller_tag,
                    "to-tag": early_tag,
                    "sdp": placeholder_sdp(offered),
                    "replace": ["origin", "session-connection"],
                    "ICE": "remove",
                    "transport-protocol": "RTP/AVP",
                },
            )
            sdp = answer["sdp"]
        except (NgError, KeyError) as exc:
            log.error("call %s: no early media (%s)", call_id, exc)
            return "", ""
        KSR.tm.t_newtran()
        KSR.textops.set_reply_body(sdp, "application/sdp")
        KSR.hdr.append_to_reply(f"Contact: <sip:{self.contact}>\r\n")
        KSR.tm.t_reply(183, "Session Progress")
        return early_tag, sdp

    def play(self, call_id: str, caller_tag: str, prompt: str, repeat: bool = False) -> None:
        """Play a prompt to the caller, replacing whatever plays now."""
        where = {"call-id": call_id, "from-tag": caller_tag}
        with contextlib.suppress(NgError):
            self.ng.command("stop media", **where)  # "not playing" is fine
        if not prompt:
            return
        extra = {"repeat-times": 1000} if repeat else {}
        try:
            self.ng.command("play media", **where, file=prompt, **extra)
        except NgError as exc:
            log.error("call %s: cannot play %s: %s", call_id, prompt, exc)

    # ------------------------------------------------------------ menus, PIN
    def hold_for_keys(
        self, plan: Plan, decision: Decision, event: cdr.CallEvent, who: CallerFacts
    ) -> int:
        """A call that needs the caller's keys first (a menu, a PIN): answer
        its media in early media, hold the INVITE (t_suspend) and prompt.
        The caller is not billed while choosing: nothing is answered until
        someone takes the call. Digits arrive in `ksr_dtmf`, timeouts in
        `ksr_ivr_tick`; `ksr_ivr_continue` carries out the choice."""
        call_id = event.call_id
        if KSR.textops.has_body_type("application/sdp") <= 0:
            # No offer, no early media to prompt with (a late-offer INVITE).
            self.emit(ended(event, "failed", 488, "no SDP offer for the menu"))
            KSR.sl.send_reply(488, "Not Acceptable Here")
            return OK
        if KSR.rtpengine.rtpengine_offer(offer_flags(self.plans.current())) < 0:
            self.emit(ended(event, "failed", 503, "media relay unavailable"))
            KSR.sl.send_reply(503, "Service Unavailable")
            return OK
        KSR.rr.record_route()
        caller_tag = KSR.pv.get("$ft") or ""
        early_tag, early_sdp = self.early_media(call_id, caller_tag)
        if not early_tag:
            self.emit(ended(event, "failed", 503, "media relay unavailable"))
            KSR.sl.send_reply(503, "Service Unavailable")
            return OK
        facts = CallFacts(
            kind=event.kind,
            tenant=decision.tenant,
            hotline=decision.hotline,
            caller=decision.caller,
            caller_tag=caller_tag,
            day=who.day,
            record=decision.record,
            early_tag=early_tag,
            early_sdp=early_sdp,
        )
        KSR.htable.sht_sets("calls", call_id, msgspec.json.encode(facts).decode())
        self.emit(event)
        # t_suspend parks the INVITE on a blind branch whose timer would
        # answer 408 after fr_timer: the menu's own timers end it instead.
        KSR.tm.t_set_fr(MAX_HOLD_MS, MAX_HOLD_MS)
        if KSR.tmx.t_suspend() < 0:
            log.error("call %s: cannot hold the INVITE for the menu", call_id)
            self.end_failed_call(500, "the appliance could not take the call")
            KSR.tm.t_reply(500, "Server Internal Error")
            return OK
        held = HeldCall(
            index=int(KSR.pv.get("$T(id_index)")),
            label=int(KSR.pv.get("$T(id_label)")),
            caller_tag=caller_tag,
            who=who,
            prompting=self.prompting_for(decision),
        )
        menus = ivr.Menus(plan, self.stock_prompt)
        with held_lock(call_id):
            self.carry_out(call_id, held, menus.start(held.prompting), menus)
        return OK

    @staticmethod
    def prompting_for(decision: Decision) -> ivr.Prompting:
        kind = ivr.PIN if decision.action == PIN else ivr.MENU
        return ivr.Prompting(
            kind=kind,
            hotline=decision.hotline,
            tenant=decision.tenant,
            menu=decision.target.partition(":")[2] if kind == ivr.MENU else "",
        )

    def carry_out(self, call_id: str, held: HeldCall, step: ivr.Step, menus: ivr.Menus) -> bool:
        """Do what a menu step says, with the call's `ivr` entry locked.
        Returns True when the caller has chosen (or is refused) and the held
        INVITE must be continued (by the caller, after the lock is released)."""
        plan = menus.plan
        while step.action == ivr.GO:
            facts = self.facts_of(
                plan, held.who, pin_ok=step.pin_ok or held.prompting.kind == ivr.MENU
            )
            now = dt.datetime.now(dt.UTC)
            if step.pin_ok:
                outcome = decide(plan, facts, now, explain=False)
            else:
                outcome = decide_destination(plan, facts, now, step.destination, explain=False)
            log.info("call %s: %s; %s", call_id, step.trace, outcome.trace[-1])
            if outcome.action not in (MENU, PIN):
                held.outcome = outcome
                self.save_held(call_id, held)
                return True
            held.prompting = self.prompting_for(outcome)
            step = menus.start(held.prompting)
        log.info("call %s: %s", call_id, step.trace)
        held.generation += 1
        self.play(call_id, held.caller_tag, step.play)
        if step.action == ivr.REFUSE:
            held.refusal = step
        deadline = time.time() + step.wait
        KSR.htable.sht_sets("ivrtimer", call_id, f"{deadline:.3f} {held.generation}")
        self.save_held(call_id, held)
        return False

    @staticmethod
    def save_held(call_id: str, held: HeldCall) -> None:
        KSR.htable.sht_sets("ivr", call_id, msgspec.json.encode(held).decode())

    def on_key(self, call_id: str, digit: str = "", generation: int = -1, tag: str = "") -> None:
        """A digit from the caller, or (with `generation`) a timer that fired."""
        with held_lock(call_id):
            raw = KSR.htable.sht_get("ivr", call_id)
            if not raw:
                return
            held = _held_dec.decode(raw)
            if held.outcome is not None or held.cancelled:
                return
            if digit and tag != held.caller_tag:
                return  # only the caller's keys count
            if generation >= 0 and generation != held.generation:
                return  # a timer of an earlier step
            if held.refusal is not None:
                if not digit:  # the refusal prompt has played
                    held.outcome = Decision(
                        action=REJECT,
                        sip_code=held.refusal.sip_code,
                        reason=held.refusal.reason,
                    )
                    self.save_held(call_id, held)
                    resume = True
                else:
                    return
            else:
                menus = ivr.Menus(self.plans.current(), self.stock_prompt)
                if digit:
                    step = menus.on_digit(held.prompting, digit)
                else:
                    step = menus.on_timeout(held.prompting)
                resume = self.carry_out(call_id, held, step, menus)
        if resume:
            KSR.htable.sht_rm("ivrtimer", call_id)
            if KSR.tmx.t_continue(held.index, held.label, "ksr_ivr_continue") < 0:
                log.error("call %s: the held INVITE is gone", call_id)

    def cancel_held(self, call_id: str) -> None:
        """The caller hung up while in a menu: tm has answered the held
        INVITE 487 already; end the call's media and record, and let tm
        release the transaction."""
        with held_lock(call_id):
            raw = KSR.htable.sht_get("ivr", call_id)
            if not raw:
                return
            held = _held_dec.decode(raw)
            if held.outcome is not None:
                return  # already on its way: tm cancels what rings
            held.cancelled = True
            self.save_held(call_id, held)
        KSR.htable.sht_rm("ivrtimer", call_id)
        self.end_failed_call(487, "caller hung up in the menu")
        KSR.tmx.t_continue(held.index, held.label, "ksr_ivr_continue")

    def cancel_queued(self, call_id: str) -> None:
        """The caller hung up while waiting in a queue (not while its members
        ring again: tm's CANCEL reaches them and the failure route ends it)."""
        with held_lock(call_id):
            raw = KSR.htable.sht_get("ivr", f"queue:{call_id}")
            if not raw or _queued_dec.decode(raw).trying:
                return
            queued = _queued_dec.decode(raw)
        self.end_failed_call(487, "caller hung up in the queue")
        KSR.tmx.t_continue(queued.index, queued.label, "ksr_queue_continue")

    @guarded
    def ksr_dtmf(self, msg) -> int:  # type: ignore[no-untyped-def]
        """A datagram that is not SIP (nosip): rtpengine reporting a digit on
        the DTMF socket, or junk, dropped without a word."""
        if KSR.pv.get("$Rp") != self.settings.media.dtmf_port or KSR.pv.get("$si") != "127.0.0.1":
            self.flooding(KSR.pv.get("$si"))  # junk counts like requests: a flood is banned
            return OK
        try:
            report = _dtmf_dec.decode(KSR.pv.get("$mb") or "")
            call_id, tag, event = report["callid"], report["source_tag"], report["event"]
        except (msgspec.DecodeError, KeyError):
            return OK
        if not isinstance(event, int) or not 0 <= event < len(ivr.DIGITS):
            return OK
        digit = ivr.DIGITS[event]
        if not isinstance(call_id, str) or not isinstance(tag, str):
            return OK
        if not self.on_survey(call_id, digit=digit, tag=tag):
            self.on_key(call_id, digit=digit, tag=tag)
        return OK

    def route_dtmf_info(self) -> bool:
        """An INFO carrying a key (`info_digit`) from the caller of a call in
        a menu or in the survey: the same key as an RFC 4733 event
        (`ksr_dtmf`), answered 200 here. It is the caller's by Call-ID and
        From tag, with or without a To tag (a phone may send it in the early
        dialog of the menu's 183). False for any other INFO, which is routed
        in dialog as before."""
        call_id = KSR.pv.get("$ci") or ""
        digit = info_digit(KSR.pv.get("$cT") or "", KSR.pv.get("$rb") or "")
        known = KSR.htable.sht_get("calls", call_id)
        if not digit or not known:
            return False
        tag = KSR.pv.get("$ft") or ""
        if tag != _facts_dec.decode(known).caller_tag:
            return False
        if not (
            KSR.htable.sht_get("ivr", call_id) or KSR.htable.sht_get("ivr", f"survey:{call_id}")
        ):
            return False
        if KSR.tm.t_check_trans() == 0:
            return True  # a retransmission: tm has sent the 200 again
        KSR.tm.t_newtran()
        KSR.tm.t_reply(200, "OK")
        log.info("call %s: key %s by SIP INFO", call_id, digit)
        if not self.on_survey(call_id, digit=digit, tag=tag):
            self.on_key(call_id, digit=digit, tag=tag)
        return True

    @staticmethod
    def refuse_refer(call_id: str) -> int:
        """A transfer (REFER) from either side is refused, not relayed:
        the other side would call whatever its Refer-To names, the carrier
        on the hotline's account, or an agent's phone with its own
        credentials when the caller sent it (toll fraud). The call goes on."""
        log.warning(
            "call %s: REFER to %s from %s refused",
            call_id,
            KSR.pv.get("$hdr(Refer-To)"),
            KSR.pv.get("$si"),
        )
        KSR.sl.send_reply(403, "Transfer Not Allowed")
        return OK

    @guarded
    def ksr_ivr_tick(self, msg, *_event) -> int:  # type: ignore[no-untyped-def]
        """The media timers (rtimer, a few times a second): a prompt has
        played, the caller has not pressed a key in time, or the agent-ID
        announcement is over. And the trunks' gateways follow the plan."""
        self.watch_gateways()
        now = time.time()
        due: list[tuple[str, str]] = []
        KSR.htable.sht_iterator_start("ivrt", "ivrtimer")
        try:
            while KSR.htable.sht_iterator_next("ivrt") > 0:
                deadline, _, what = str(KSR.pv.get("$shtitval(ivrt)") or "").partition(" ")
                if deadline and float(deadline) <= now:
                    due.append((KSR.pv.get("$shtitkey(ivrt)"), what))
        finally:
            KSR.htable.sht_iterator_end("ivrt")
        # Acted on once the iterator has let go of the table's slots.
        for key, what in due:
            if key.startswith("unblock:"):
                KSR.htable.sht_rm("ivrtimer", key)
                self.unblock(key.removeprefix("unblock:"), what)
            elif key.startswith("survey:"):
                self.on_survey(key.removeprefix("survey:"), generation=int(what))
            elif key.startswith("queue:"):
                self.on_queue_timer(key.removeprefix("queue:"))
            elif key.startswith("vmlimit:"):
                KSR.htable.sht_rm("ivrtimer", key)
                self.cut_voicemail(key.removeprefix("vmlimit:"))
            else:
                self.on_key(key, generation=int(what))
        return OK

    @guarded
    def ksr_ivr_continue(self, msg) -> int:  # type: ignore[no-untyped-def]
        """The held INVITE again, once the caller has chosen, been refused,
        or hung up."""
        call_id = KSR.pv.get("$ci")
        raw = KSR.htable.sht_get("ivr", call_id)
        KSR.htable.sht_rm("ivr", call_id)
        KSR.htable.sht_rm("ivrtimer", call_id)
        if not raw:
            return OK
        held = _held_dec.decode(raw)
        outcome = held.outcome
        if held.cancelled or outcome is None or KSR.tm.t_is_canceled() > 0:
            self.end_failed_call(487, "caller hung up in the menu")
            KSR.tm.t_reply(487, "Request Terminated")
            return OK
        if outcome.action == REJECT:
            self.end_failed_call(outcome.sip_code, outcome.reason)
            KSR.tm.t_reply(outcome.sip_code, outcome.reason)
            return OK
        if outcome.action == VOICEMAIL:
            self.play(call_id, held.caller_tag, "")
            if not self.answer_voicemail(call_id, held.caller_tag):
                self.end_failed_call(500, "the appliance could not take the call")
                KSR.tm.t_reply(500, "Server Internal Error")
            return OK
        plan = self.plans.current()
        raw_facts = KSR.htable.sht_get("calls", call_id)
        if raw_facts:
            facts = _facts_dec.decode(raw_facts)
            facts.strategy, facts.record = outcome.strategy, outcome.record
            KSR.htable.sht_sets("calls", call_id, msgspec.json.encode(facts).decode())
        ringback = outcome.ringback or self.stock_prompt("ring-tone")
        self.play(call_id, held.caller_tag, ringback, repeat=True)
        self.ring(plan, outcome, held=True)
        return OK

    def start_recording(self, call_id: str, caller_tag: str) -> None:
        """Record the call from now on (pcap, both legs), telling the
        converter which leg is the caller's."""
        where = {"call-id": call_id, "from-tag": caller_tag}
        metadata = recording.caller_metadata(call_id, caller_tag, self.ng)
        try:
            self.ng.command("start recording", **where, metadata=metadata)
        except NgError as exc:
            log.error("call %s: recording did not start: %s", call_id, exc)

    def stock_prompt(self, *names: str) -> str:
        """The first of the product's stock prompts (rendered by `linebox
        init` into <data>/prompts/_stock/zh/) that exists, or ''."""
        base = self.settings.paths.data_dir / "prompts" / "_stock" / "zh"
        for name in names:
            path = base / f"{name}.wav"
            if path.is_file():
                return str(path)
        return ""

    def take_message(self, event: cdr.CallEvent, decision: Decision) -> int:
        """A call whose route is voicemail: answer it and record a message."""
        call_id = event.call_id
        if KSR.rtpengine.rtpengine_offer(offer_flags(self.plans.current())) < 0:
            self.emit(ended(event, "failed", 503, "media relay unavailable"))
            KSR.sl.send_reply(503, "Service Unavailable")
            return OK
        caller_tag = KSR.pv.get("$ft") or ""
        facts = CallFacts(
            kind=event.kind,
            tenant=decision.tenant,
            hotline=decision.hotline,
            caller=decision.caller,
            caller_tag=caller_tag,
        )
        KSR.htable.sht_sets("calls", call_id, msgspec.json.encode(facts).decode())
        self.emit(event)
        if not self.answer_voicemail(call_id, caller_tag):
            self.end_failed_call(500, "the appliance could not take the call")
            KSR.sl.send_reply(500, "Server Internal Error")
        return OK

    def answer_voicemail(self, call_id: str, caller_tag: str) -> bool:
        """Answer for the voicemail box (from the request route, or from the
        failure route when a fallback chain ends in voicemail): 200 with the
        media of a placeholder endpoint, the greeting and beep, and record
        the caller until they hang up."""
        try:
            answer = self.ng.command(
                "answer",
                **{
                    "call-id": call_id,
                    "from-tag": caller_tag,
                    "to-tag": f"vm-{caller_tag}",
                    "sdp": placeholder_sdp(KSR.pv.get("$rb") or ""),
                    "replace": ["origin", "session-connection"],
                    "ICE": "remove",
                    "transport-protocol": "RTP/AVP",
                },
            )
        except NgError as exc:
            log.error("call %s: cannot answer for voicemail: %s", call_id, exc)
            return False
        if KSR.tmx.t_is_request_route() > 0:
            KSR.tm.t_newtran()
        KSR.textops.set_reply_body(answer["sdp"], "application/sdp")
        KSR.hdr.append_to_reply(f"Contact: <sip:voicemail@{self.contact}>\r\n")
        KSR.tm.t_reply(200, "OK")
        raw = KSR.htable.sht_get("calls", call_id)
        if raw:
            facts = _facts_dec.decode(raw)
            facts.voicemail, facts.answered_at = True, time.time()
            facts.caller_contact = KSR.pv.get("$(ct{tobody.uri})") or ""
            facts.caller_from = KSR.pv.get("$hdr(From)") or ""
            facts.called_to = KSR.pv.get("$hdr(To)") or ""
            KSR.htable.sht_sets("calls", call_id, msgspec.json.encode(facts).decode())
            # The message's maximum length: then linebox hangs up.
            deadline = time.time() + self.settings.media.voicemail_max_seconds
            KSR.htable.sht_sets("ivrtimer", f"vmlimit:{call_id}", f"{deadline:.3f} -")
        greeting = self.stock_prompt("leave-a-message-beep", "leave-a-message")
        try:
            if greeting:
                where = {"call-id": call_id, "from-tag": caller_tag}
                self.ng.command("play media", **where, file=greeting)
            self.start_recording(call_id, caller_tag)
        except NgError as exc:
            log.error("call %s: voicemail greeting or recording failed: %s", call_id, exc)
        log.info("call %s: answered for voicemail", call_id)
        return True

    @staticmethod
    def next_targets(state: CallState) -> list[Target]:
        """What to ring next: every remaining destination at once for
        `ring_all`, else the next one; a fallback chain once the list is done,
        each of its destinations counting against the forward cap."""
        if not state.ring and state.phase == "ring":
            chain = state.busy if state.any_busy else state.no_answer
            if chain:
                state.phase = "busy" if state.any_busy else "no_answer"
                state.ring = list(chain)
        if not state.ring:
            return []
        if state.phase == "ring" and state.strategy == "ring_all":
            targets, state.ring = state.ring, []
            return targets
        if state.phase != "ring":
            if state.forwards >= state.max_forwards:
                log.info("call %s: forward cap of %d reached", KSR.pv.get("$ci"), state.forwards)
                state.ring = []
                return []
            state.forwards += 1
        return [state.ring.pop(0)]

    @staticmethod
    def add_branches(plan: Plan, target: Target, first: bool, state: CallState) -> int:
        """Point the request (the first target) or new branches (the others)
        at a destination; how many branches it makes (an extension registered
        from two phones makes two, one not registered makes none)."""
        count = int(KSR.pv.get("$branch(count)") or 0)
        if target.kind == "ext":
            uri = f"sip:{target.number}@{plan.domain}"
            if first:
                KSR.seturi(uri)
                if KSR.registrar.lookup("location") < 0:
                    return 0
                return 1 + int(KSR.pv.get("$branch(count)") or 0) - count
            if KSR.registrar.lookup_to_dset("location", uri) < 0:
                return 0
            return int(KSR.pv.get("$branch(count)") or 0) - count
        if target.kind == "tel" and plan.trunks:
            trunk = plan.trunks[0]
            state.gateway = gateway_for(trunk)
            uri = trunk.uri(target.number, trunk.gateways[state.gateway])
            if first:
                KSR.seturi(uri)
            else:
                KSR.corex.append_branch_uri(uri)
            return 1
        return 0

    def relay_next(self, plan: Plan, state: CallState) -> bool:
        """Send the INVITE to the next destination(s) that can take it."""
        call_id = KSR.pv.get("$ci")
        while targets := self.next_targets(state):
            KSR.resetdsturi()
            if targets[0].kind == "voicemail":
                self.save_state(state)
                return self.answer_voicemail(call_id, KSR.pv.get("$ft") or "")
            branches: list[Target] = []
            for target in targets:
                if target.kind == "tel" and not self.count_outbound(plan, state):
                    continue
                made = self.add_branches(plan, target, first=not branches, state=state)
                if not made:
                    log.info(
                        "call %s: %s:%s cannot be rung now (not registered), skipped",
                        call_id,
                        target.kind,
                        target.number,
                    )
                    state.last_code = state.last_code or 480
                branches.extend([target] * made)
            if not branches:
                continue
            state.branches = [*state.branches, *branches]
            self.save_state(state)
            # The ring timeout holds whether or not the phone says it rings;
            # a trunk gateway that says nothing at all is given up sooner.
            timeout_ms = max(t.timeout for t in targets) * 1000
            calls_out = any(t.kind == "tel" for t in branches)
            no_reply_ms = min(timeout_ms, GATEWAY_SILENCE_MS) if calls_out else timeout_ms
            KSR.tm.t_set_fr(timeout_ms, no_reply_ms)
            KSR.tm.t_on_failure("ksr_failure_next")
            if calls_out:
                KSR.tm.t_on_branch("ksr_branch_out")
            KSR.tm.t_on_reply("ksr_reply_invite")
            names = ", ".join(f"{t.kind}:{t.number}" for t in targets)
            log.info("call %s: ringing %s for %d s", call_id, names, timeout_ms // 1000)
            if KSR.tm.t_relay() > 0:
                return True
            log.warning("call %s: relay to %s failed", call_id, KSR.pv.get("$ru"))
            state.branches = state.branches[: len(state.branches) - len(branches)]
        self.save_state(state)
        return False

    def count_outbound(self, plan: Plan, state: CallState) -> bool:
        """Count the call in its tenant's calls out through the trunk, once;
        False (and an alert in the log) when the tenant's ceiling is reached."""
        if state.outbound:
            return True
        tenant = plan.tenants.get(state.tenant)
        ceiling = tenant.max_outbound if tenant else 0
        talked = KSR.htable.sht_get("outmin", f"{state.tenant}:{int(time.time()) // 3600}") or 0
        if talked >= (tenant.max_outbound_minutes * 60 if tenant else 0):
            log.info("tenant %s: minutes per hour used up, no call out", state.tenant)
            return False
        if KSR.htable.sht_inc("outbound", state.tenant) > ceiling:
            KSR.htable.sht_dec("outbound", state.tenant)
            log.warning(
                "ALERT tenant %s: %d calls out through the trunk at once, refusing more",
                state.tenant,
                ceiling,
            )
            return False
        trunk = plan.trunks[0] if plan.trunks else None
        if trunk is not None and trunk.max_calls:
            # The channels the carrier sold: past them the carrier refuses.
            if KSR.htable.sht_inc("outbound", f"trunk:{trunk.name}") > trunk.max_calls:
                KSR.htable.sht_dec("outbound", f"trunk:{trunk.name}")
                KSR.htable.sht_dec("outbound", state.tenant)
                log.warning(
                    "trunk %s: all %d channels in use, no call out", trunk.name, trunk.max_calls
                )
                return False
            state.out_trunk = trunk.name
        state.outbound = True
        call_id = KSR.pv.get("$ci")
        raw = KSR.htable.sht_get("calls", call_id)
        if raw:
            facts = _facts_dec.decode(raw)
            facts.outbound = True
            facts.out_trunk = state.out_trunk
            KSR.htable.sht_sets("calls", call_id, msgspec.json.encode(facts).decode())
        return True

    def add_outbound_time(self, tenant: str, seconds: float) -> None:
        """Add a call's talk time to its tenant's minutes out this hour; crossing
        the ceiling is an alert (the worker sends notices), once an hour."""
        hour = int(time.time()) // 3600
        key = f"{tenant}:{hour}"
        KSR.htable.sht_lock("outmin", key)
        try:
            talked = (KSR.htable.sht_get("outmin", key) or 0) + max(0, round(seconds))
            KSR.htable.sht_setxi("outmin", key, talked, 7200)
        finally:
            KSR.htable.sht_unlock("outmin", key)
        plan_tenant = self.plans.current().tenants.get(tenant)
        ceiling = plan_tenant.max_outbound_minutes if plan_tenant else 0
        if talked >= ceiling * 60 and KSR.htable.sht_inc("once", f"outmin:{key}") == 1:
            log.warning(
                "ALERT tenant %s: %d minutes out through the trunk this hour (ceiling %d), "
                "refusing more until the hour ends",
                tenant,
                talked // 60,
                ceiling,
            )
            self.enqueue("outbound_minutes", tenant, hour, talked // 60, ceiling)

    @staticmethod
    def save_state(state: CallState) -> None:
        KSR.pv.unset("$avp(lb_state)")
        KSR.pv.sets("$avp(lb_state)", _state_enc.encode(state).decode())

    @staticmethod
    def load_state() -> CallState | None:
        raw = KSR.pv.get("$avp(lb_state)")
        return _state_dec.decode(raw) if raw else None

    # ------------------------------------------------------------ failure
    def next_gateway(self, state: CallState, code: int) -> bool:
        """A call out whose trunk gateway failed it (no answer at all, or a
        5xx of the gateway's own): try the trunk's next gateway, so a gateway
        going down fails no call."""
        if not state.branches or state.branches[-1].kind != "tel":
            return False
        silent = code == 408 and KSR.tm.t_branch_replied() < 0
        if not silent and code not in GATEWAY_FAILURES:
            return False
        plan = self.plans.current()
        trunk = plan.trunks[0] if plan.trunks else None
        if trunk is None or state.gateway + 1 >= len(trunk.gateways):
            return False
        target, failed = state.branches[-1], trunk.gateways[state.gateway]
        state.gateway = gateway_for(trunk, state.gateway + 1)
        log.warning(
            "call %s: gateway %s of trunk %s %s; trying %s",
            KSR.pv.get("$ci"),
            failed,
            trunk.name,
            "did not answer" if silent else f"answered {code}",
            trunk.gateways[state.gateway],
        )
        KSR.resetdsturi()
        KSR.seturi(trunk.uri(target.number, trunk.gateways[state.gateway]))
        # A branch made in the failure route starts from the caller's own
        # SDP: rtpengine offers its media again (the same ports).
        if KSR.textops.has_body_type("application/sdp") > 0:
            KSR.rtpengine.rtpengine_offer(offer_flags(self.plans.current()))
        state.branches = [*state.branches, target]
        self.save_state(state)
        timeout_ms = target.timeout * 1000
        KSR.tm.t_set_fr(timeout_ms, min(timeout_ms, GATEWAY_SILENCE_MS))
        KSR.tm.t_on_failure("ksr_failure_next")
        KSR.tm.t_on_reply("ksr_reply_invite")
        KSR.tm.t_on_branch("ksr_branch_out")
        if KSR.tm.t_relay() > 0:
            return True
        state.branches.pop()
        return False

    @guarded
    def ksr_branch_out(self, msg) -> int:  # type: ignore[no-untyped-def]
        """Each branch of a call that rings a number through the trunk: the
        carrier is told who calls (P-Asserted-Identity) and, for a hotline's
        call, which number forwarded it (Diversion), or shown the hotline
        itself when the hotline says `caller_id = "hotline"`."""
        plan = self.plans.current()
        hostport = (KSR.pv.get("$ru") or "").partition("@")[2].partition(";")[0]
        if not any(hostport in trunk.gateways for trunk in plan.trunks):
            return OK
        raw = KSR.htable.sht_get("calls", KSR.pv.get("$ci"))
        facts = _facts_dec.decode(raw) if raw else None
        KSR.hdr.remove("P-Asserted-Identity")
        KSR.hdr.remove("Diversion")
        if facts is None or not facts.hotline:
            return OK
        hotline = plan.hotlines.get(facts.hotline)
        shown = facts.hotline if hotline and hotline.caller_id == "hotline" else facts.caller
        if shown.isdigit():
            KSR.hdr.append(f"P-Asserted-Identity: <sip:{shown}@{plan.domain}>\r\n")
        else:  # a caller who withheld the number stays anonymous
            KSR.hdr.append("Privacy: id\r\n")
        if shown != facts.hotline:
            KSR.hdr.append(
                f"Diversion: <sip:{facts.hotline}@{plan.domain}>;reason=unconditional;counter=1\r\n"
            )
        return OK

    @guarded
    def ksr_dispatcher_event(self, msg, event: str = "") -> int:  # type: ignore[no-untyped-def]
        """A trunk gateway stopped or started answering OPTIONS probes: said
        in the log at once (`watch_gateways` tells the worker)."""
        uri = KSR.pv.get("$du") or KSR.pv.get("$ru") or ""
        up = event.endswith("dst-up")
        for trunk in self.plans.current().trunks:
            for gateway in trunk.gateways:
                if trunk.probe_uri(gateway) == uri:
                    log.log(
                        logging.INFO if up else logging.WARNING,
                        "trunk %s: gateway %s %s",
                        trunk.name,
                        gateway,
                        "answers again" if up else "does not answer OPTIONS",
                    )
        return OK

    def watch_gateways(self) -> None:
        """From the timer process: the dispatcher list is written with the
        plan, so reload it when the plan changed; then, once a round of
        probes has had time to answer (a reloaded or restarted list starts
        with every gateway up), tell the worker each gateway's state as it
        changes, the first one included: the health page never keeps a
        state Kamailio has forgotten."""
        plan, now = self.plans.current(), time.time()
        if plan.version != self._gateways_version:
            if KSR.dispatcher.ds_reload() > 0:
                self._gateways_version = plan.version
                settle = self.settings.sip.gateway_ping + GATEWAY_PROBE_SECONDS
                self._gateways_watch_at = now + settle
            return
        if now < self._gateways_watch_at:
            return
        self._gateways_watch_at = now + 1
        for trunk in plan.trunks:
            for gateway in trunk.gateways:
                up = KSR.dispatcher.ds_is_active_uri(trunk.setid, trunk.probe_uri(gateway)) > 0
                if self._gateways_up.get((trunk.name, gateway)) != up:
                    self._gateways_up[(trunk.name, gateway)] = up
                    self.enqueue("trunk_gateway", trunk.name, gateway, up, now)

    @guarded
    def ksr_failure_next(self, msg) -> int:  # type: ignore[no-untyped-def]
        state = self.load_state()
        if state is None:
            return OK
        if KSR.tm.t_is_canceled() > 0:
            self.end_failed_call(487)
            return OK
        code = KSR.pv.get("$T_reply_code") or 500
        state.last_code = code
        if self.next_gateway(state, code):
            return OK
        state.any_busy = state.any_busy or code in BUSY_CODES
        state.all_busy = state.all_busy and code in BUSY_CODES
        if state.queue_wait and not state.ring and state.phase == "ring" and state.all_busy:
            if self.wait_in_queue(state):
                return OK
            state.queue_wait = 0  # the wait is over: the busy fallback takes over
        if code in NEXT_ON and self.relay_next(self.plans.current(), state):
            return OK
        # Nothing left: tm sends the caller the best reply it has.
        self.end_failed_call(486 if state.any_busy and code not in BUSY_CODES else code)
        return OK

    # ------------------------------------------------------------ queue
    def wait_in_queue(self, state: CallState) -> bool:
        """Every member is busy: hold the caller with music (排队) and try the
        members again when it is their turn, first come first served, until
        the queue's wait is over. False when the caller cannot wait (no
        early media to play music on, or the wait is over)."""
        call_id = KSR.pv.get("$ci")
        raw = KSR.htable.sht_get("calls", call_id)
        facts = _facts_dec.decode(raw) if raw else None
        if facts is None or not facts.early_tag:
            return False
        now = time.time()
        first = not state.queued_at
        if first:
            state.queued_at = now
            state.ticket = KSR.htable.sht_inc("counters", f"queue:{state.queue_key}")
        elif now - state.queued_at >= state.queue_wait:
            return False
        if first:
            music = state.queue_music or self.stock_prompt("hold-music")
            self.play(call_id, facts.caller_tag, music, repeat=True)
            log.info("call %s: every member is busy; waiting in the queue", call_id)
        state.branches = [*state.branches, Target("held")]  # t_suspend's blind branch
        self.save_state(state)
        KSR.tm.t_set_fr(MAX_HOLD_MS, MAX_HOLD_MS)
        if KSR.tmx.t_suspend() < 0:
            log.error("call %s: cannot hold the call in the queue", call_id)
            return False
        queued = QueuedCall(
            index=int(KSR.pv.get("$T(id_index)")),
            label=int(KSR.pv.get("$T(id_label)")),
            key=state.queue_key,
            ticket=state.ticket,
        )
        KSR.htable.sht_sets("ivr", f"queue:{call_id}", msgspec.json.encode(queued).decode())
        KSR.htable.sht_sets("ivrtimer", f"queue:{call_id}", f"{now + QUEUE_RETRY:.3f} 0")
        return True

    def on_queue_timer(self, call_id: str) -> None:
        """A waiting caller's timer: try the members again if it is their
        turn (or end the wait), else wait on."""
        key = f"queue:{call_id}"
        with held_lock(call_id):
            raw = KSR.htable.sht_get("ivr", key)
            if not raw:
                return
            queued = _queued_dec.decode(raw)
            if not self.first_in_line(queued):
                KSR.htable.sht_sets("ivrtimer", key, f"{time.time() + QUEUE_RETRY:.3f} 0")
                return
            queued.trying = True
            KSR.htable.sht_sets("ivr", key, msgspec.json.encode(queued).decode())
        if KSR.tmx.t_continue(queued.index, queued.label, "ksr_queue_continue") < 0:
            log.error("call %s: the queued INVITE is gone", call_id)
            KSR.htable.sht_rm("ivr", key)

    @staticmethod
    def first_in_line(queued: QueuedCall) -> bool:
        """No caller of the same queue came earlier and still waits."""
        earliest = queued.ticket
        KSR.htable.sht_iterator_start("ivrq", "ivr")
        try:
            while KSR.htable.sht_iterator_next("ivrq") > 0:
                if not str(KSR.pv.get("$shtitkey(ivrq)") or "").startswith("queue:"):
                    continue
                other = _queued_dec.decode(str(KSR.pv.get("$shtitval(ivrq)")))
                if other.key == queued.key and other.ticket < earliest:
                    earliest = other.ticket
        finally:
            KSR.htable.sht_iterator_end("ivrq")
        return earliest == queued.ticket

    @guarded
    def ksr_queue_continue(self, msg) -> int:  # type: ignore[no-untyped-def]
        """The caller's turn (in failure-route context): ring the members
        again; when the wait is over, the busy fallback."""
        state = self.load_state()
        call_id = KSR.pv.get("$ci")
        if state is None:
            return OK
        if KSR.tm.t_is_canceled() > 0:
            self.end_failed_call(487, "caller hung up in the queue")
            return OK
        plan = self.plans.current()
        if time.time() - state.queued_at < state.queue_wait:
            state.ring, state.phase = list(state.queue_ring), "ring"
            log.info("call %s: first in line; ringing the members again", call_id)
            if self.relay_next(plan, state):
                return OK
            if self.wait_in_queue(state):  # nobody could be rung: wait on
                return OK
        log.info("call %s: the queue's wait is over", call_id)
        KSR.htable.sht_rm("ivr", f"queue:{call_id}")
        state.queue_wait, state.ring = 0, []
        if self.relay_next(plan, state):
            return OK
        self.end_failed_call(486, "every member busy, the queue's wait is over")
        KSR.tm.t_reply(486, "Busy Here")
        return OK

    def end_failed_call(self, code: int, cause: str | None = None) -> None:
        call_id = KSR.pv.get("$ci")
        KSR.htable.sht_rm("ivr", f"queue:{call_id}")
        KSR.htable.sht_rm("ivrtimer", f"queue:{call_id}")
        KSR.rtpengine.rtpengine_delete(f"from-tag={KSR.pv.get('$ft')}")
        if KSR.htable.sht_inc("once", call_id + ":end") != 1:
            return
        state = self.load_state()
        if state is not None and state.outbound:
            KSR.htable.sht_dec("outbound", state.tenant)
            if state.out_trunk:
                KSR.htable.sht_dec("outbound", f"trunk:{state.out_trunk}")
        self.emit(
            cdr.CallEvent(
                call_id=call_id,
                type=cdr.END,
                at=time.time(),
                status=cdr.status_for_failure(code),
                sip_code=code,
                cause=(KSR.pv.get("$T_reply_reason") or "") if cause is None else cause,
            )
        )
        KSR.htable.sht_rm("calls", call_id)

    # ------------------------------------------------------------ replies
    @guarded
    def ksr_reply_invite(self, msg) -> int:  # type: ignore[no-untyped-def]
        status = KSR.pv.get("$rs") or 0
        call_id = KSR.pv.get("$ci")
        has_sdp = KSR.textops.has_body_type("application/sdp") > 0
        raw = KSR.htable.sht_get("calls", call_id)
        facts = _facts_dec.decode(raw) if raw else None
        early_tag = facts.early_tag if facts else ""
        if early_tag and status < 200:
            # The caller hears the ringback: a phone's own early media must not
            # replace it, so its SDP gives way to the ringback's. (Dropping the
            # reply would hide from tm that the phone rings: no CANCEL later.)
            if has_sdp and facts is not None:
                KSR.textops.set_body(facts.early_sdp, "application/sdp")
            return OK
        nated = KSR.nathelper.nat_uac_test(NAT_REPLY_TEST) > 0
        if nated:
            # A phone behind NAT: in-dialog requests go to where its reply
            # came from, not to its private Contact.
            KSR.nathelper.fix_nated_contact()
        if has_sdp and status < 300:
            flags = RTP_ANSWER
            if nated:
                # Media goes to the reply's source address, not the SDP's
                # private one, until the phone's first packet shows its port.
                flags += " SIP-source-address"
            if early_tag and not KSR.htable.sht_get("once", call_id + ":answered"):
                # Re-anchor the ringback's media to the agent: same caller port.
                flags += f" to-tag={early_tag}"
            if KSR.rtpengine.rtpengine_answer(flags) < 0:
                log.error("call %s: rtpengine refused the answer", call_id)
        if 200 <= status < 300 and KSR.htable.sht_inc("once", call_id + ":answered") == 1:
            if early_tag and facts:
                KSR.rtpengine.stop_media(f"from-tag={facts.caller_tag}")
            if facts and facts.record:
                self.start_recording(call_id, facts.caller_tag)
            target, agent_id = self.answered(call_id)
            if facts and target and agent_id:
                self.announce_agent(call_id, facts, target, agent_id)
        return OK

    def announce_agent(self, call_id: str, facts: CallFacts, target: Target, agent_id: str) -> None:
        """工号播报: on a group that announces agents, the caller hears
        "工号 8001 为您服务" as the call is answered; the agent hears silence
        for as long, then both talk."""
        group = self.group_of(facts.tenant, target)
        if group is None or not group.announce_agent_id:
            return
        agent_tag = KSR.pv.get("$tt") or ""
        try:
            announcement = stock.agent_id_announcement(agent_id)
            seconds = ivr.wav_seconds(str(announcement))
            # Neither hears the other meanwhile (rtpengine's player adds to
            # what is forwarded, it does not replace it).
            for tag in (facts.caller_tag, agent_tag):
                self.ng.command("block media", **{"call-id": call_id, "from-tag": tag})
            self.ng.command(
                "play media",
                **{"call-id": call_id, "from-tag": facts.caller_tag},
                file=str(announcement),
            )
        except (PromptError, OSError, NgError) as exc:
            log.error("call %s: no agent-ID announcement for %s: %s", call_id, agent_id, exc)
            seconds = 0.0
        KSR.htable.sht_sets(
            "ivrtimer", f"unblock:{call_id}", f"{time.time() + seconds:.3f} {agent_tag}"
        )

    def group_of(self, tenant: str, target: Target | None) -> GroupPlan | None:
        """The group a rung destination came from, if any."""
        if target is None or not target.via.startswith("group:"):
            return None
        plan_tenant = self.plans.current().tenants.get(tenant)
        return plan_tenant.groups.get(target.via.removeprefix("group:")) if plan_tenant else None

    def unblock(self, call_id: str, agent_tag: str) -> None:
        """The announcement has played: caller and agent hear each other."""
        raw = KSR.htable.sht_get("calls", call_id)
        if not raw:
            return  # the call has ended
        for tag in (_facts_dec.decode(raw).caller_tag, agent_tag):
            try:
                self.ng.command("unblock media", **{"call-id": call_id, "from-tag": tag})
            except NgError as exc:
                log.warning("call %s: cannot unblock %s: %s", call_id, tag, exc)

    def answered(self, call_id: str) -> tuple[Target | None, str]:
        """The first 2xx of a call: who answered, their daily count, the
        caller's sticky memory, and the `answer` event. Returns who answered
        and their agent ID."""
        KSR.htable.sht_rm("ivr", f"queue:{call_id}")
        state = self.load_state()
        index = KSR.pv.get("$T_branch_idx")
        target = None
        if state is not None and isinstance(index, int) and 0 <= index < len(state.branches):
            target = state.branches[index]
        number = target.number if target else ""
        kind = target.kind if target else ""
        extension = self.plans.current().extensions.get(number) if kind == "ext" else None
        agent_id = extension.agent_id if extension else ""
        raw = KSR.htable.sht_get("calls", call_id)
        if raw:
            facts = _facts_dec.decode(raw)
            facts.answered_by, facts.answered_kind, facts.agent_id = number, kind, agent_id
            facts.answered_at = time.time()
            group = self.group_of(facts.tenant, target)
            facts.survey = bool(group and group.survey)
            KSR.htable.sht_sets("calls", call_id, msgspec.json.encode(facts).decode())
            member = f"{kind}:{number}"
            if target and facts.day:
                KSR.htable.sht_inc("agents", f"{facts.day}:{member}")
            if target and facts.strategy == "sticky" and facts.tenant and facts.caller:
                at = time.time()
                key = sticky.key(facts.tenant, facts.caller)
                KSR.htable.sht_sets("sticky", key, sticky.value(member, at))
                self.enqueue("sticky", key, member, at)
        self.emit(
            cdr.CallEvent(
                call_id=call_id,
                type=cdr.ANSWER,
                at=time.time(),
                answered_by=number,
                answered_kind=kind,
                agent_id=agent_id,
            )
        )
        return target, agent_id

    @guarded
    def ksr_reply_route(self, msg) -> int:  # type: ignore[no-untyped-def]
        return OK

    # ------------------------------------------------------------ in dialog
    def route_in_dialog(self) -> int:
        call_id = KSR.pv.get("$ci")
        known = KSR.htable.sht_get("calls", call_id)
        if known and KSR.is_ACK():
            self.remember_own_tag(call_id, known)
        if known and KSR.is_BYE():
            facts = _facts_dec.decode(known)
            if KSR.htable.sht_get("ivr", f"survey:{call_id}"):
                # The caller hangs up during the survey: no score, no error.
                KSR.sl.send_reply(200, "OK")
                self.end_survey(call_id, send_bye=False)
                return OK
            if facts.survey and facts.answered_at and KSR.pv.get("$ft") != facts.caller_tag:
                return self.start_survey(call_id, known, facts)
        if known and KSR.is_REFER():
            return self.refuse_refer(call_id)
        # Only dialogs this appliance set up are routed: a forged Route set
        # must not turn loose routing into an open relay.
        if known and KSR.rr.loose_route() > 0:
            if KSR.is_BYE():
                # Whoever hangs up, the session is the caller's (from-tag).
                caller_tag = _facts_dec.decode(known).caller_tag
                KSR.rtpengine.rtpengine_delete(f"from-tag={caller_tag}")
                self.end_answered_call(call_id, known)
            elif KSR.is_INVITE() or KSR.is_UPDATE():
                if KSR.textops.has_body_type("application/sdp") > 0:
                    KSR.rtpengine.rtpengine_offer(offer_flags(self.plans.current()))
                KSR.tm.t_on_reply("ksr_reply_invite")
            KSR.tm.t_relay()
            return OK
        if KSR.is_ACK():
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            return OK
        if known and KSR.is_BYE():
            facts = _facts_dec.decode(known)
            if facts.voicemail:
                KSR.htable.sht_rm("ivrtimer", f"vmlimit:{call_id}")
                KSR.rtpengine.rtpengine_delete(f"from-tag={facts.caller_tag}")
                KSR.sl.send_reply(200, "OK")
                self.end_voicemail(call_id, facts)
                return OK
        KSR.sl.send_reply(481, "Call/Transaction Does Not Exist")
        return OK

    # ------------------------------------------------------------ survey
    def start_survey(self, call_id: str, raw: str, facts: CallFacts) -> int:
        """The agent hung up on a group that asks for scores: answer the
        agent's BYE, close the talk (its record ends now) and ask the caller
        (满意度调查)."""
        KSR.sl.send_reply(200, "OK")
        survey = Survey(
            caller_tag=facts.caller_tag,
            ruri=KSR.pv.get("$ru") or "",
            from_=KSR.pv.get("$hdr(From)") or "",
            to=KSR.pv.get("$hdr(To)") or "",
            cseq=int(KSR.pv.get("$cs") or 1),
        )
        self.end_answered_call(call_id, raw)
        where = {"call-id": call_id, "from-tag": facts.caller_tag}
        if facts.record:
            with contextlib.suppress(NgError):
                self.ng.command("stop recording", **where)
        question = self.stock_prompt("survey")
        with held_lock(call_id):
            KSR.htable.sht_sets("ivr", f"survey:{call_id}", msgspec.json.encode(survey).decode())
            self.play(call_id, facts.caller_tag, question)
            self.survey_timer(call_id, survey, ivr.wav_seconds(question) + SURVEY_WAIT)
        log.info("call %s: the agent hung up; asking the caller for a score", call_id)
        return OK

    @staticmethod
    def survey_timer(call_id: str, survey: Survey, seconds: float) -> None:
        survey.generation += 1
        KSR.htable.sht_sets("ivr", f"survey:{call_id}", msgspec.json.encode(survey).decode())
        deadline = time.time() + seconds
        KSR.htable.sht_sets("ivrtimer", f"survey:{call_id}", f"{deadline:.3f} {survey.generation}")

    def on_survey(self, call_id: str, digit: str = "", generation: int = -1, tag: str = "") -> bool:
        """A key or a timer during the survey; False when the call is in no
        survey. A score of 1–3 is stored, thanked for, and the call ends; no
        score in time ends it all the same."""
        key = f"survey:{call_id}"
        with held_lock(call_id):
            raw = KSR.htable.sht_get("ivr", key)
            if not raw:
                return False
            survey = _survey_dec.decode(raw)
            if digit:
                if tag != survey.caller_tag or survey.scored or digit not in "123":
                    return True
                survey.scored = True
                self.emit(
                    cdr.CallEvent(
                        call_id=call_id, type=cdr.SURVEY, at=time.time(), score=int(digit)
                    )
                )
                log.info("call %s: the caller scored %s", call_id, digit)
                thanks = self.stock_prompt("thank-you")
                self.play(call_id, survey.caller_tag, thanks)
                self.survey_timer(call_id, survey, ivr.wav_seconds(thanks))
                return True
            if generation != survey.generation:
                return True
        self.end_survey(call_id, send_bye=True, survey=survey)
        return True

    def end_survey(self, call_id: str, send_bye: bool, survey: Survey | None = None) -> None:
        """Hang up on the caller (the agent's BYE, held back until now) and
        release the media."""
        key = f"survey:{call_id}"
        if survey is None:
            raw = KSR.htable.sht_get("ivr", key)
            survey = _survey_dec.decode(raw) if raw else None
        KSR.htable.sht_rm("ivr", key)
        KSR.htable.sht_rm("ivrtimer", key)
        if survey is None:
            return
        self.release_media(call_id, survey.caller_tag)
        if send_bye:
            self.hang_up(call_id, survey.ruri, survey.from_, survey.to, survey.cseq)

    def release_media(self, call_id: str, caller_tag: str) -> None:
        """Delete the call's rtpengine session by Call-ID: also from the timer
        process, where there is no SIP message for the rtpengine module."""
        try:
            self.ng.command("delete", **{"call-id": call_id, "from-tag": caller_tag})
        except NgError as exc:
            log.warning("call %s: rtpengine delete: %s", call_id, exc)

    @staticmethod
    def hang_up(call_id: str, ruri: str, from_: str, to: str, cseq: int) -> None:
        """Send the caller a BYE of a dialog linebox holds (tm's own UAC)."""
        headers = f"From: {from_}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} BYE\r\n"
        if KSR.tm.t_uac_send("BYE", ruri, "", "", headers, "") < 0:
            log.error("call %s: could not send the caller a BYE", call_id)

    @staticmethod
    def remember_own_tag(call_id: str, raw: str) -> None:
        """The caller's ACK to linebox's own 200 (voicemail) carries the tag
        tm gave that 200: the To of a BYE linebox may send later."""
        facts = _facts_dec.decode(raw)
        if facts.voicemail and facts.called_to and ";tag=" not in facts.called_to:
            facts.called_to += f";tag={KSR.pv.get('$tt')}"
            KSR.htable.sht_sets("calls", call_id, msgspec.json.encode(facts).decode())

    def cut_voicemail(self, call_id: str) -> None:
        """The message reached its maximum length: hang up on the caller."""
        raw = KSR.htable.sht_get("calls", call_id)
        if not raw:
            return
        facts = _facts_dec.decode(raw)
        if not facts.voicemail or not facts.caller_contact:
            return
        log.info("call %s: the message reached its maximum length; hanging up", call_id)
        self.hang_up(call_id, facts.caller_contact, facts.called_to, facts.caller_from, 1)
        self.release_media(call_id, facts.caller_tag)
        self.end_voicemail(call_id, facts)

    def end_voicemail(self, call_id: str, facts: CallFacts) -> None:
        if KSR.htable.sht_inc("once", call_id + ":end") != 1:
            return
        self.enqueue("convert_voicemail", call_id)
        self.emit(
            cdr.CallEvent(
                call_id=call_id,
                type=cdr.END,
                at=time.time(),
                status="voicemail",
                sip_code=200,
                cause="message left",
                answered_by="voicemail",
                answered_kind="voicemail",
                answered_at=facts.answered_at,
            )
        )

    def end_answered_call(self, call_id: str, raw: str) -> None:
        if KSR.htable.sht_inc("once", call_id + ":end") != 1:
            return
        facts = _facts_dec.decode(raw)
        if facts.outbound:
            KSR.htable.sht_dec("outbound", facts.tenant)
            if facts.out_trunk:
                KSR.htable.sht_dec("outbound", f"trunk:{facts.out_trunk}")
            if facts.answered_at:
                self.add_outbound_time(facts.tenant, time.time() - facts.answered_at)
        if facts.record:
            self.enqueue("convert_recording", call_id)
        by = "caller" if KSR.pv.get("$ft") == facts.caller_tag else "callee"
        self.emit(
            cdr.CallEvent(
                call_id=call_id,
                type=cdr.END,
                at=time.time(),
                status="answered",
                sip_code=200,
                cause=f"BYE from {by}",
                answered_by=facts.answered_by,
                answered_kind=facts.answered_kind,
                agent_id=facts.agent_id,
                answered_at=facts.answered_at,
            )
        )
        # Keep the entry a little longer for the BYE's retransmissions and the
        # other side's late requests; the table's autoexpire removes it.

    # ------------------------------------------------------------ events
    def enqueue(self, task: str, *args: object) -> None:
        """Hand work to the worker through this process's journal: one write,
        never a wait on the worker or its database. A failure is logged and
        never breaks the call; the record sweep closes calls whose events
        are lost."""
        try:
            self.journal.append(task, *args)
        except OSError:
            log.error("could not journal %s: %s", task, traceback.format_exc())

    def emit(self, event: cdr.CallEvent) -> None:
        self.enqueue("call_event", cdr.encode_event(event).decode())
