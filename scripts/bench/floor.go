package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// The floor part measures what one hand-off between two processes costs
// on this machine: a byte written to a loopback TCP connection until the
// process at the other end has read it, half of a round trip between this
// process and an echo process (this binary, run with -echo-server). It is
// measured twice: back to back (the other process's threads still awake)
// and after an idle gap like the one each process of a call at c=1 sees
// between its turns (its threads asleep, so the kernel must wake one).
//
// A call through toolbus crosses eight such hand-offs (client → ingress →
// nats-server → worker → upstream, and back), a direct call two: the
// overhead at c=1 cannot be below six hand-offs, whatever each process does.

const (
	floorRoundTrips = 5000
	floorIdleGap    = time.Millisecond
)

type floorResult struct {
	BusyUS, IdleUS float64 // one hand-off, p50
	Extra          int     // hand-offs a call through toolbus adds
}

// echoServer is the process at the other end: it echoes what it reads on
// the one connection it accepts, until that connection closes.
func echoServer() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr().String())
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = io.Copy(c, c)
	return err
}

func benchFloor(ctx context.Context) (floorResult, error) {
	self, err := os.Executable()
	if err != nil {
		return floorResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-echo-server")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return floorResult{}, err
	}
	if err := cmd.Start(); err != nil {
		return floorResult{}, err
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return floorResult{}, fmt.Errorf("echo server: %w", err)
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", strings.TrimSpace(addr))
	if err != nil {
		return floorResult{}, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		return floorResult{}, err
	}
	measure := func(gap time.Duration) (float64, error) {
		b := []byte{'x'}
		rtts := make([]time.Duration, 0, floorRoundTrips)
		for range floorRoundTrips {
			if gap > 0 {
				time.Sleep(gap)
			}
			start := time.Now()
			if _, err := c.Write(b); err != nil {
				return 0, err
			}
			if _, err := io.ReadFull(c, b); err != nil {
				return 0, err
			}
			rtts = append(rtts, time.Since(start))
		}
		slices.Sort(rtts)
		return float64(rtts[len(rtts)/2].Nanoseconds()) / 2 / 1e3, nil
	}
	var r floorResult
	if r.BusyUS, err = measure(0); err != nil {
		return r, err
	}
	if r.IdleUS, err = measure(floorIdleGap); err != nil {
		return r, err
	}
	r.Extra = 6
	return r, nil
}

func printFloor(w io.Writer, r *floorResult) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\nOne hand-off between two processes over loopback TCP (half a round trip, p50 of %d): %.1f µs back to back, %.1f µs after %v idle.\n",
		floorRoundTrips, r.BusyUS, r.IdleUS, floorIdleGap)
	fmt.Fprintf(w, "A call through toolbus crosses %d more than a direct call: at c=1 at least %.0f µs of overhead on this machine.\n",
		r.Extra, float64(r.Extra)*r.IdleUS)
}
