package jobs

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// settlement is what becomes of a delivered job message. Every step of a
// delivery (claim, run, finish) and of the intake returns one instead of
// settling the message itself; settle applies it. So the fate of a message
// is decided in one place, and settle holds the package's only Ack, Nak and
// Term calls (InProgress, which only extends the ack wait, is the heartbeat's).
type settlement struct {
	kind   settleKind
	delay  time.Duration // retry: the nak delay
	reason string        // term: the reason JetStream records
}

type settleKind int

const (
	// keep leaves the message unsettled here: another attempt owns the job
	// (it settles the message), or the same job already runs on this
	// worker (its attempt acks for both).
	keep settleKind = iota
	// done acknowledges the message: its record says the job is over.
	done
	// giveBack naks the message at once, for another worker: this worker
	// is stopping.
	giveBack
	// retry naks the message with a delay: the record could not be
	// decided or written now, or the job is queued for another attempt.
	retry
	// drop terminates the message: it can never run (malformed, or its
	// record is gone).
	drop
)

func settleDone() settlement                 { return settlement{kind: done} }
func settleGiveBack() settlement             { return settlement{kind: giveBack} }
func settleRetry(d time.Duration) settlement { return settlement{kind: retry, delay: d} }
func settleDrop(reason string) settlement    { return settlement{kind: drop, reason: reason} }
func settleKeep() settlement                 { return settlement{kind: keep} }

// settle applies s to msg. An ack is not waited for: the record, written
// before, is the truth; an ack that is lost brings the message back after
// ack_wait, and that delivery finds the record terminal and acks it then.
// (Waiting for the confirmation cost a JetStream round trip per job: a
// quarter of a worker's per-job round trips.) A nak or term that is lost
// brings the message back too. d, if set, is the delivery's log line.
func (r *Runner) settle(msg jetstream.Msg, s settlement, d *delivery) {
	switch s.kind {
	case done:
		if err := msg.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) && d != nil {
			d.reason = joinReason(d.reason, "ack not sent: "+clip(err.Error()))
		}
	case giveBack:
		_ = msg.Nak()
	case retry:
		_ = msg.NakWithDelay(s.delay)
	case drop:
		_ = msg.TermWithReason(s.reason)
	case keep:
	}
}
