// Package mocks simulates the job services fanflow calls out to.
//
// A Server serves the configured job endpoints (by default the seed's
// /v1/batchJobA, /v1/batchJobB and /v1/batchJobC). For each valid callout —
// POST, Content-Type application/json, a JSON object with non-empty string
// "jobId" and "orderId" and an integer "timeout" — it answers
// 202 {"accepted":true,"jobId":…}, waits timeout × TimeScale seconds (plus
// jitter) and POSTs the received body, verbatim, to the callback URL, with
// header X-Callback-Token when the body has a "callbackToken". A failed
// callback is retried with exponential backoff and jitter while the receiver
// answers with a network error, 408, 429 or 5xx, for at most
// Config.CallbackRetryFor; any other 4xx is final.
//
// Invalid callouts get 400 (415 for the content type, 405 for the method)
// with fanflow's error shape:
//
//	{"error":{"code":"…","message":"…","field":"…"}}
//
// Fault injection (Config.CalloutFailRate, DuplicateRate, DropRate,
// FailedRate, Jitter) is drawn from one random source seeded by Config.Seed.
//
// Config.OnCallbackAnswered, when set, sees the answer to every callback
// attempt (status and body), so a load generator can tell when fanflow
// reports an order completed.
//
// Waiting is done with time.AfterFunc, so a pending callback costs a timer
// and its body, not a goroutine; tens of thousands may wait at once.
//
// A Server can run on its own listener (Handler) or be mounted in another
// fasthttp server (Handle returns false for paths it does not serve).
package mocks
