// Package relp is a RELP server (the Reliable Event Logging Protocol of
// rsyslog's omrelp, librelp's doc/relp.md) that answers a syslog message
// only once its consumer acknowledges it, so that a sender keeps, and
// sends again, every message whose effect a crash could still lose.
//
// Listen binds; Serve hands each syslog frame on as a Delivery; the
// consumer calls Delivery.Ack when the message's effect is durable (or
// when it dropped the message on purpose). Acks may come in any order and
// in groups; a session answers ("TXNR rsp 6 200 OK") the longest prefix of
// its frames that is acknowledged, in the order received, as the
// specification requires ("Responses must be sent by the server in the
// exact same order as commands where received"; librelp's client would
// also match answers out of order, relaygate does not rely on it).
//
// What librelp's client (rsyslog's omrelp, librelp 1.11) does, and what
// this package therefore does:
//
//   - A session begins with "1 open LEN offers"; the answer is "200 OK"
//     followed by the server's offers (relp_version, relp_software,
//     commands=syslog). omrelp requires the syslog command in the answer;
//     librelp offers relp_version=0 and refuses a server that answers more
//     than it offered, so relaygate answers the lower of the client's and 1.
//   - Transaction numbers count up from 1 in every session (a reconnect
//     starts again at 1) and wrap after 999,999,999; a number out of
//     sequence ends the session, as librelp's server ends it.
//   - The client keeps every frame it sent and that is not answered 200 in
//     a window (windowSize, 128 by default). When a session breaks it
//     connects again and sends every unanswered frame again, with new
//     numbers, before new ones: so a message is answered only when it is
//     safe, never with 500 (a 500 makes librelp drop the frame from its
//     window: the message would be lost), and a session that cannot go on
//     is closed without answering what is not durable.
//   - The client notices a closed session only when it next sends (it reads
//     answers just before sending): unanswered frames are sent again when
//     rsyslog next forwards a message on that action.
//   - A client waits at most its timeout (90 s by default) for room in its
//     window; a server that does not answer for that long makes it break
//     the session and send everything again. Durability in relaygate takes
//     about 100 ms.
//   - The client's close ("N close 0") is answered after every frame before
//     it, then the server sends the "0 serverclose 0" hint and closes, as
//     librelp's server does (librelp answers close with empty data; relaygate
//     answers "200 OK", which librelp's client reads as a completed close).
//     librelp's client frees its unanswered frames after a close, so a close
//     waits up to DrainTimeout for their acknowledgements.
//
// Frames are read strictly: 1 to 9 digits for TXNR and DATALEN (leading
// zeros allowed, as librelp allows them), 1 to 32 letters for COMMAND,
// exactly one SP between fields, DATALEN 0 directly followed by LF, and
// exactly one LF after DATA. A frame that breaks any of these, a command
// other than open, syslog and close, and DATALEN over the message limit
// on anything but syslog end the session, counted by reason in
// relaygate_relp_sessions_closed_total, logged at most once per reason
// every 10 s, never fatal. A syslog frame over the limit is read through,
// dropped, counted and answered, so the sender's queue does not stall on
// it; hints (TXNR 0) from a client are ignored.
//
// Nothing waits without a deadline: the TLS handshake and the open within
// OpenTimeout, a frame once begun within FrameTimeout, each write within
// WriteTimeout, and an ending session's wait for acknowledgements within
// DrainTimeout. A session holding Window unanswered frames stops reading
// until some are answered (back-pressure through TCP).
package relp
