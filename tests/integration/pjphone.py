"""A pjsua2 softphone for the tests, run in its own process (a crash in
pjsip cannot take pytest down): commands arrive as JSON lines on stdin,
events leave as JSON lines on stdout.

    python -m tests.integration.pjphone --sip-port P --rtp-port R --id-uri URI
        [--registrar sip:host:port --user U --password S]
        --speak tone.wav --heard-dir DIR

No sound card: the null audio device drives pjmedia's clock; the phone
speaks `--speak` (looped) into each call and records what it decodes to
DIR/heard-<n>.wav. Only PCMA and telephone-event are offered.

Commands: {"cmd": "call", "uri": …}, "answer", {"cmd": "dtmf", "digits": …,
"method": "rfc2833"|"info"}, "hold", "resume", {"cmd": "xfer", "uri": …},
"stats", "hangup", "quit". Events: "ready", "reg", "incoming", "state",
"media", "offer" (an SDP offer received, the whole SDP), "dtmf" (a key
received), "xfer" (the transfer's status), "stats" (RTP packets each way),
"error".
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
from pathlib import Path
from typing import Any

import pjsua2 as pj

# pjsip prints to stdout as it starts: the events get the real stdout to
# themselves and file descriptor 1 goes to stderr.
EVENTS = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)


def emit(event: str, **fields: Any) -> None:
    EVENTS.write(json.dumps({"event": event, **fields}) + "\n")
    EVENTS.flush()


class Call(pj.Call):  # type: ignore[misc]
    def __init__(self, phone: Phone, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(phone.account, call_id)
        self.phone = phone
        self.player: pj.AudioMediaPlayer | None = None
        self.recorder: pj.AudioMediaRecorder | None = None

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        emit(
            "state",
            state=info.stateText,
            code=info.lastStatusCode,
            call_id=info.callIdString,
        )
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # Dropping the recorder closes its WAV (the header gets its size).
            self.player = self.recorder = None

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            emit("media", status=int(media.status), dir=int(media.dir))
            if media.status not in (
                pj.PJSUA_CALL_MEDIA_ACTIVE,
                pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
                pj.PJSUA_CALL_MEDIA_LOCAL_HOLD,
            ):
                continue
            audio = self.getAudioMedia(index)
            if self.player is None:
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(self.phone.speak, 0)
                self.phone.heard += 1
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(
                    str(self.phone.heard_dir / f"heard-{self.phone.heard}.wav")
                )
            self.player.startTransmit(audio)
            audio.startTransmit(self.recorder)

    def onCallRxOffer(self, prm: Any) -> None:
        emit("offer", sdp=prm.offer.wholeSdp)

    def onDtmfDigit(self, prm: Any) -> None:
        emit("dtmf", digit=prm.digit, method=int(prm.method))

    def onCallTransferStatus(self, prm: Any) -> None:
        emit("xfer", code=prm.statusCode, reason=prm.reason, final=prm.finalNotify)


class Account(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onRegState(self, prm: Any) -> None:
        emit("reg", code=prm.code)

    def onIncomingCall(self, prm: Any) -> None:
        call = Call(self.phone, prm.callId)
        self.phone.call = call
        emit("incoming", call_id=call.getInfo().callIdString)


class Phone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.speak = args.speak
        self.heard_dir = Path(args.heard_dir)
        self.heard = 0
        self.call: Call | None = None
        self.endpoint = pj.Endpoint()
        self.endpoint.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.userAgent = "linebox-test-pjsua2"
        config.logConfig.level = 5
        config.logConfig.consoleLevel = 0
        config.logConfig.filename = str(self.heard_dir / "pjsua2.log")
        config.medConfig.clockRate = 8000
        config.medConfig.sndClockRate = 8000
        config.medConfig.ecTailLen = 0
        config.medConfig.noVad = True
        self.endpoint.libInit(config)
        transport = pj.TransportConfig()
        transport.port = args.sip_port
        transport.boundAddress = "127.0.0.1"
        transport.publicAddress = "127.0.0.1"
        self.endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.endpoint.libStart()
        self.endpoint.audDevManager().setNullDev()
        for codec in self.endpoint.codecEnum2():
            wanted = codec.codecId.startswith("PCMA/8000")
            self.endpoint.codecSetPriority(codec.codecId, 255 if wanted else 0)

        account = pj.AccountConfig()
        account.idUri = args.id_uri
        if args.registrar:
            account.regConfig.registrarUri = args.registrar
            account.regConfig.timeoutSec = 300
            account.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", args.user, 0, args.password)
            )
        else:
            account.regConfig.registrarUri = ""
            account.regConfig.registerOnAdd = False
        media = account.mediaConfig.transportConfig
        media.port = args.rtp_port
        media.portRange = 10
        media.boundAddress = "127.0.0.1"
        media.publicAddress = "127.0.0.1"
        if args.session_expires:
            account.callConfig.timerUse = pj.PJSUA_SIP_TIMER_ALWAYS
            account.callConfig.timerSessExpiresSec = args.session_expires
            account.callConfig.timerMinSESec = 90
        self.account = Account(self)
        self.account.create(account)

    def handle(self, command: dict[str, Any]) -> bool:
        """Carry out one command; False once told to quit."""
        what = command["cmd"]
        if what == "quit":
            return False
        if what == "call":
            self.call = Call(self)
            self.call.makeCall(command["uri"], pj.CallOpParam(True))
            return True
        call = self.call
        if call is None:
            emit("error", message=f"{what}: no call")
            return True
        if what == "answer":
            answer = pj.CallOpParam(True)
            answer.statusCode = 200
            call.answer(answer)
        elif what == "dtmf":
            dtmf = pj.CallSendDtmfParam()
            dtmf.digits = command["digits"]
            dtmf.method = {
                "rfc2833": pj.PJSUA_DTMF_METHOD_RFC2833,
                "info": pj.PJSUA_DTMF_METHOD_SIP_INFO,
            }[command["method"]]
            call.sendDtmf(dtmf)
        elif what == "hold":
            call.setHold(pj.CallOpParam(True))
        elif what == "resume":
            resume = pj.CallOpParam(True)
            resume.opt.flag = pj.PJSUA_CALL_UNHOLD
            call.reinvite(resume)
        elif what == "xfer":
            call.xfer(command["uri"], pj.CallOpParam(True))
        elif what == "stats":
            rtcp = call.getStreamStat(0).rtcp
            emit("stats", rx=rtcp.rxStat.pkt, tx=rtcp.txStat.pkt)
        elif what == "hangup":
            call.hangup(pj.CallOpParam(True))
        else:
            emit("error", message=f"unknown command {what}")
        return True

    def run(self) -> None:
        emit("ready")
        buffer = b""
        while True:
            self.endpoint.libHandleEvents(20)
            readable, _, _ = select.select([sys.stdin], [], [], 0)
            if not readable:
                continue
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                return  # the test has gone
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    going = self.handle(json.loads(line))
                except pj.Error as exc:
                    emit("error", message=exc.info())
                    going = True
                if not going:
                    return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sip-port", type=int, required=True)
    parser.add_argument("--rtp-port", type=int, required=True)
    parser.add_argument("--id-uri", required=True)
    parser.add_argument("--registrar", default="")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--session-expires", type=int, default=0)
    parser.add_argument("--speak", required=True)
    parser.add_argument("--heard-dir", required=True)
    args = parser.parse_args()
    phone = Phone(args)
    try:
        phone.run()
    finally:
        phone.endpoint.hangupAllCalls()
        for _ in range(25):
            phone.endpoint.libHandleEvents(20)
        # pjsua2's objects and Python's collector disagree about who frees
        # what at exit: leave without either trying.
        EVENTS.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
