package manifest

import (
	"runtime"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// A List's items are decoded in batches by up to GOMAXPROCS goroutines and filed in
// order by the reader's own, so the result is the same as decoding them one after
// the other. Decoding (sigs.k8s.io/json's reflection, most of a big List's reading
// time) needs no reader state; filing (duplicates, and the caller's visit) stays
// sequential.
const (
	// parallelItems is the smallest List decoded in parallel; a manifest's few
	// items are not worth the goroutines.
	parallelItems = 256
	// itemBatch is how many items a goroutine decodes at a time.
	itemBatch = 64
	// batchesAhead bounds the batches decoded but not yet filed, per goroutine, so
	// that a slow visit does not let decoded objects pile up.
	batchesAhead = 4
)

// decodeItems decodes and files the elements of the List read from listSrc.
func (r *reader) decodeItems(listSrc Source, elements [][]byte, itemGVK schema.GroupVersionKind) {
	workers := runtime.GOMAXPROCS(0)
	if workers < 2 || len(elements) < parallelItems {
		for i, item := range elements {
			r.file(decodeItem(listSrc, i, item, itemGVK))
		}
		return
	}
	type batch struct {
		start int
		done  chan []decoded
	}
	jobs := make(chan batch)
	// pending holds the batches in input order; its capacity is how far decoding may
	// run ahead of filing.
	pending := make(chan batch, workers*batchesAhead)
	go func() {
		defer close(jobs)
		defer close(pending)
		for start := 0; start < len(elements); start += itemBatch {
			b := batch{start: start, done: make(chan []decoded, 1)}
			pending <- b
			jobs <- b
		}
	}()
	for range workers {
		go func() {
			for b := range jobs {
				end := min(b.start+itemBatch, len(elements))
				out := make([]decoded, 0, end-b.start)
				for i := b.start; i < end; i++ {
					out = append(out, decodeItem(listSrc, i, elements[i], itemGVK))
				}
				b.done <- out
			}
		}()
	}
	for b := range pending {
		for _, d := range <-b.done {
			r.file(d)
		}
	}
}
