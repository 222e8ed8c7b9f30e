package capture

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// discardAppender stores nothing: the benchmarks measure the request path,
// not a store.
type discardAppender struct{}

func (discardAppender) Append(_ context.Context, b apiusage.Batch) (apiusage.Receipt, error) {
	return apiusage.Receipt{Accepted: len(b.Events)}, nil
}

// nopWriter is a ResponseWriter that costs nothing, so that the benchmark
// shows what the middleware adds.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

func benchRig(b *testing.B) (*rig, func()) {
	b.Helper()
	is := newIssuer(b)
	v, err := NewVerifier(VerifierConfig{JWKSURL: is.url()})
	if err != nil {
		b.Fatal(err)
	}
	rec, err := NewRecorder(discardAppender{}, RecorderConfig{})
	if err != nil {
		b.Fatal(err)
	}
	rg := &rig{is: is, rec: rec, cfg: Config{Recorder: rec, Verifier: v}}
	return rg, func() {
		b.StopTimer()
		b.ReportMetric(float64(count(rec.metrics.dropFull))/float64(b.N), "dropped/op")
		closeRecorder(b, rec)
	}
}

// cpuMeter measures the CPU time a benchmark spends, beside the wall time
// that ns/op reports: on a machine shared with other work, wall time
// counts the waits for a core too. thread-cpu-ns/op is the time of the
// benchmark's own thread, which is the request path (the loop runs locked
// to it); proc-cpu-ns/op is the whole process's, the recorder's shipper and
// the garbage collector included.
type cpuMeter struct{ thread, proc time.Duration }

func startCPU() cpuMeter {
	runtime.LockOSThread()
	return cpuMeter{thread: rusage(syscall.RUSAGE_THREAD), proc: rusage(syscall.RUSAGE_SELF)}
}

func (m cpuMeter) stop(b *testing.B) {
	thread, proc := rusage(syscall.RUSAGE_THREAD)-m.thread, rusage(syscall.RUSAGE_SELF)-m.proc
	runtime.UnlockOSThread()
	b.ReportMetric(float64(thread.Nanoseconds())/float64(b.N), "thread-cpu-ns/op")
	b.ReportMetric(float64(proc.Nanoseconds())/float64(b.N), "proc-cpu-ns/op")
}

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMiddleware measures a trivial handler alone (mw=none) and wrapped
// by the middleware (mw=capture), with a token already verified once; the
// difference is the middleware's cost per request. router=mux routes with
// an http.ServeMux (its cost is in both), router=routes with a route table.
// Compare with: benchstat -col /mw
func BenchmarkMiddleware(b *testing.B) {
	trivial := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	routes, err := NewRoutes([]string{"/api/v2/users/{userId}", "/api/v2/users/me", "/api/v2/groups/{groupId}"})
	if err != nil {
		b.Fatal(err)
	}
	setups := []struct {
		name    string
		handler func() http.Handler
		routes  *Routes
	}{
		{"mux", func() http.Handler {
			mux := http.NewServeMux()
			mux.Handle("GET /api/v2/users/{userId}", trivial)
			return mux
		}, nil},
		{"routes", func() http.Handler { return trivial }, routes},
	}
	for _, s := range setups {
		b.Run("router="+s.name+"/mw=none", func(b *testing.B) {
			h := s.handler()
			req := httptest.NewRequest("GET", "/api/v2/users/42", nil)
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
			cpu.stop(b)
		})
		b.Run("router="+s.name+"/mw=capture", func(b *testing.B) {
			rg, done := benchRig(b)
			defer done()
			rg.cfg.Routes = s.routes
			h := rg.handler(b, s.handler())
			req := httptest.NewRequest("GET", "/api/v2/users/42", nil)
			req.Header.Set("Authorization", "Bearer "+rg.token(b, "org", "client"))
			w := &nopWriter{h: http.Header{}}
			h.ServeHTTP(w, req) // verifies the token once
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
			cpu.stop(b)
		})
	}
	b.Run("router=routes-parallel/mw=none", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req := httptest.NewRequest("GET", "/api/v2/users/42", nil)
			w := &nopWriter{h: http.Header{}}
			for pb.Next() {
				trivial.ServeHTTP(w, req)
			}
		})
	})
	b.Run("router=routes-parallel/mw=capture", func(b *testing.B) {
		rg, done := benchRig(b)
		defer done()
		rg.cfg.Routes = routes
		h := rg.handler(b, trivial)
		token := "Bearer " + rg.token(b, "org", "client")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req := httptest.NewRequest("GET", "/api/v2/users/42", nil)
			req.Header.Set("Authorization", token)
			w := &nopWriter{h: http.Header{}}
			for pb.Next() {
				h.ServeHTTP(w, req)
			}
		})
	})
}

// BenchmarkProxy sends requests from parallel clients over loopback through
// a plain httputil.ReverseProxy (proxy=plain) and through the recording
// proxy (proxy=recording), to the same upstream in the same run. ns/op is
// the inverse of throughput; p50-µs is the median latency a client saw.
// Compare with: benchstat -col /proxy
func BenchmarkProxy(b *testing.B) {
	body := []byte(`{"id":"42","name":"Ada"}`)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	routes, err := NewRoutes([]string{"/api/v2/users/{userId}"})
	if err != nil {
		b.Fatal(err)
	}

	run := func(b *testing.B, h http.Handler, token string) {
		px := httptest.NewServer(h)
		defer px.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
		defer client.CloseIdleConnections()
		var mu sync.Mutex
		var lat []time.Duration
		b.SetParallelism(8)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			req, _ := http.NewRequest("GET", px.URL+"/api/v2/users/42", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			var mine []time.Duration
			for pb.Next() {
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mine = append(mine, time.Since(start))
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
		b.StopTimer()
		if len(lat) > 0 {
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
		}
	}

	b.Run("proxy=plain", func(b *testing.B) {
		// The same ReverseProxy as the recording one, without recording.
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(u)
				pr.SetXForwarded()
			},
			Transport:  NewTransport(nil),
			BufferPool: newBufferPool(),
		}
		// The same token as the recording proxy's, which the upstream
		// receives too: only the recording differs.
		is := newIssuer(b)
		run(b, rp, is.sign(b, "ed", claims("org", "client", time.Now())))
	})
	b.Run("proxy=recording", func(b *testing.B) {
		rg, done := benchRig(b)
		defer done()
		rg.cfg.Routes = routes
		rg.cfg.Unauthenticated = Reject
		h, err := NewProxy(ProxyConfig{Upstream: u, Capture: rg.cfg})
		if err != nil {
			b.Fatal(err)
		}
		run(b, h, rg.token(b, "org", "client"))
	})
}
