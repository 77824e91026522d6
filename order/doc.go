// Package order is the pure state machine of one fan-out/fan-in order.
//
// A Machine holds one order: its parameters, its jobs and their statuses. It
// changes only in Step, which takes an Event (something that happened:
// Created, CalloutAccepted, CalloutFailed, CallbackReceived, DeadlinePassed,
// Activated) and returns the Effects its owner must carry out (Persist,
// CallOut, RetryCallOut, StartTimer, Reply, Notify). The package does no I/O,
// starts no goroutine and reads no clock: time arrives as the At of each event,
// deadlines leave as StartTimer and come back as DeadlinePassed, and the
// results of callouts come back as events. That makes every scenario testable
// without sleeps, and lets the shell (package actors) own all concurrency.
//
// # The caller's contract
//
//  1. One goroutine at a time. A Machine is owned by exactly one caller (the
//     order's actor); nothing else reads or writes it.
//  2. Stamp every event with the current time in At, from an injected clock.
//  3. Carry out the effects of one Step in the order they are returned.
//  4. Persist before anything else leaves. When a Step returns Persist, store
//     View() durably (as the snapshot of that version) and only then carry out
//     the effects that follow it: a Reply, a CallOut, a Notify. An answer that
//     reports a state change is never sent before that state is durable.
//  5. If the Persist fails, carry out none of the effects that follow it,
//     answer the request as unavailable, and replace the Machine by
//     Resume(last stored snapshot): memory never runs ahead of the store.
//     (If the failed step was Activated itself, use Restore and activate again.)
//  6. Feed I/O results back as events: a callout's outcome as CalloutAccepted
//     or CalloutFailed (with the Attempt from the CallOut), a fired timer as
//     DeadlinePassed. A RetryCallOut is a CallOut to perform at its At (plus
//     jitter, if the caller wants it).
//  7. After Restore, step Activated once before any other event. It re-arms
//     the deadline (or expires the order at once if it has passed) and calls
//     out again every job whose callout was never acknowledged: callouts are
//     at least once, and job services must treat jobId as an idempotency key.
//  8. Notify means the order has finished: stop its timer and its callouts.
//
// Input that is wrong from the outside (an unknown job, an event before
// Created) makes Step return an error and change nothing. Duplicates and stale
// input (a callback repeated, a result for an older attempt, a timer that fires
// early) are absorbed: no effect but, for a callback, a Reply saying so.
package order
