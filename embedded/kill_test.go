package embedded

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// killChildEnv, when set to a directory, makes TestKill9 the writer process
// instead of the test.
const killChildEnv = "APIUSAGE_EMBEDDED_KILL_CHILD"

const (
	killWriters = 3
	killBatches = 400
)

// killWorkload returns the batches writer w appends, the same in the child
// and in the test, in organizations, ids and keys of its own.
func killWorkload(w int) []apiusage.Batch {
	g := storetest.NewGen(uint64(1000 + w))
	g.Namespace(fmt.Sprintf("k%d-", w))
	return g.Batches(killBatches, 80)
}

// TestKill9 runs a writer process that appends batches from several
// goroutines and prints each acknowledgment, kills it with SIGKILL at some
// point, and reopens its directory: every acknowledged batch must be counted
// exactly once, and the batch each goroutine had in flight either wholly or
// not at all. A small checkpoint bound makes kills land during checkpoints
// too.
func TestKill9(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts processes; not in -short")
	}
	workloads := make([][]apiusage.Batch, killWriters)
	for w := range workloads {
		workloads[w] = killWorkload(w)
	}
	for _, killAfter := range []int{1, 60, 250, 700} {
		t.Run(fmt.Sprintf("after %d acknowledgments", killAfter), func(t *testing.T) {
			dir := t.TempDir()
			acked := runAndKill(t, dir, killAfter)
			s := openTest(t, dir, Options{})
			all := []apiusage.Dimension{apiusage.DimOrganization, apiusage.DimClient, apiusage.DimUser, apiusage.DimTemplateURI, apiusage.DimMethod}
			q := apiusage.Query{Interval: everything, Granularity: apiusage.GranularityDay, GroupBy: all}
			rows, err := s.Query(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for w := range killWriters {
				prefix := fmt.Sprintf("k%d-", w)
				var got []apiusage.Row
				for _, r := range rows {
					if strings.HasPrefix(r.OrganizationID, prefix) {
						got = append(got, r)
					}
				}
				// Batches 0..acked[w] were acknowledged; the next one may
				// or may not have been stored.
				var diffs []string
				for n := acked[w] + 1; n <= min(acked[w]+2, killBatches); n++ {
					var m storetest.Model
					for _, b := range workloads[w][:n] {
						m.Append(b)
					}
					diff := storetest.DiffRows(got, storetest.Count(m.Events(), q))
					if diff == "" {
						diffs = nil
						break
					}
					diffs = append(diffs, fmt.Sprintf("with %d batches: %s", n, diff))
				}
				if diffs != nil {
					t.Fatalf("writer %d, %d batches acknowledged: %s", w, acked[w]+1, strings.Join(diffs, "; "))
				}
			}
		})
	}
}

// runAndKill starts the writer process on dir, kills it after killAfter
// acknowledgments, and returns the last batch acknowledged by each writer
// (-1 for none).
func runAndKill(t *testing.T, dir string, killAfter int) []int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := make([]int, killWriters)
	for i := range acked {
		acked[i] = -1
	}
	n := 0
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		var w, i int
		switch {
		case strings.HasPrefix(line, "ack "):
			if _, err := fmt.Sscanf(line, "ack %d %d", &w, &i); err != nil {
				t.Fatalf("child said %q: %v", line, err)
			}
			if i != acked[w]+1 {
				t.Fatalf("child acknowledged batch %d of writer %d after %d", i, w, acked[w])
			}
			acked[w] = i
			n++
		case strings.HasPrefix(line, "error "):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child: %s", line)
		case line == "done":
			n = killAfter
		}
		if n >= killAfter && !killed {
			// SIGKILL: no deferred function, no Close, no flush runs.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	// Lines read after the kill were written before it: acknowledged too.
	cmd.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed; stderr: %s", stderr.String())
	}
	return acked
}

// killChild is the writer process: it appends each writer's workload,
// checking receipts, and prints "ack w i" once batch i of writer w is
// acknowledged. It never closes the store: it waits to be killed.
func killChild(dir string) {
	s, err := Open(dir, Options{CheckpointBytes: 16 << 10})
	if err != nil {
		fmt.Printf("error open: %v\n", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range killWriters {
		wg.Go(func() {
			var m storetest.Model
			for i, b := range killWorkload(w) {
				r, err := s.Append(context.Background(), b)
				want := m.Append(b)
				mu.Lock()
				switch {
				case err != nil:
					fmt.Printf("error append: %v\n", err)
				case r != want:
					fmt.Printf("error receipt %+v, want %+v\n", r, want)
				default:
					fmt.Printf("ack %d %d\n", w, i)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	fmt.Println("done")
	select {}
}
