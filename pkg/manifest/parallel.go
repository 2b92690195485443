package manifest

import (
	"iter"
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

// decodeItems decodes and files the count elements of the List read from listSrc,
// which elements yields in order. When transient is set, each element's text is only
// valid until the next one is yielded (it is a streaming reader's buffer), and is
// copied before it is handed to another goroutine.
func (r *reader) decodeItems(listSrc Source, elements iter.Seq[[]byte], count int, transient bool, itemGVK schema.GroupVersionKind) {
	workers := runtime.GOMAXPROCS(0)
	if workers < 2 || count < parallelItems {
		i := 0
		for item := range elements {
			r.file(decodeItem(listSrc, i, item, itemGVK))
			i++
		}
		return
	}
	type batch struct {
		start int
		items [][]byte
		done  chan []decoded
	}
	jobs := make(chan batch)
	// pending holds the batches in input order; its capacity is how far decoding may
	// run ahead of filing.
	pending := make(chan batch, workers*batchesAhead)
	go func() {
		defer close(jobs)
		defer close(pending)
		b := batch{}
		var text []byte // the copies of a transient batch's items
		send := func() {
			b.done = make(chan []decoded, 1)
			pending <- b
			jobs <- b
			b = batch{start: b.start + len(b.items)}
			text = nil
		}
		for item := range elements {
			if transient {
				if text == nil {
					text = make([]byte, 0, itemBatch*len(item)*5/4)
				}
				start := len(text)
				text = append(text, item...)
				item = text[start:len(text):len(text)]
			}
			b.items = append(b.items, item)
			if len(b.items) == itemBatch {
				send()
			}
		}
		if len(b.items) > 0 {
			send()
		}
	}()
	for range workers {
		go func() {
			for b := range jobs {
				out := make([]decoded, 0, len(b.items))
				for i, item := range b.items {
					out = append(out, decodeItem(listSrc, b.start+i, item, itemGVK))
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
