package endpoints

// SetNodeName changes the node the Tracker works for, which decides which copy of a
// duplicated endpoint address wins. It only takes effect for Services recomputed by
// later snapshots, so it is meant to be called before the first Snapshot: `switchyard
// dry-run` feeds each object to a Tracker as it reads it, and learns the node (the only
// Node in the input) only once the whole input has been read.
func (t *Tracker) SetNodeName(nodeName string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nodeName = nodeName
}
