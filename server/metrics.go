package server

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics. Labels are bounded: route
// patterns, status codes, execution states and kinds; never ids.
type metrics struct {
	requests          *prometheus.CounterVec
	requestDuration   *prometheus.HistogramVec
	eventsIngested    prometheus.Counter
	eventsDuplicate   prometheus.Counter
	executionsRunning prometheus.Gauge
	executionsDone    *prometheus.CounterVec
	queryDuration     *prometheus.HistogramVec
	resultsEvicted    prometheus.Counter
	resultBytes       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiusage_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiusage_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		eventsIngested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apiusage_events_ingested_total",
			Help: "Events accepted by POST /api/v2/usage/events (replayed batches excluded).",
		}),
		eventsDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apiusage_events_duplicate_total",
			Help: "Accepted events not counted again because their id had been seen.",
		}),
		executionsRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "apiusage_executions_running",
			Help: "Query executions queued or running.",
		}),
		executionsDone: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiusage_executions_finished_total",
			Help: "Query executions finished, by final state.",
		}, []string{"state"}),
		queryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiusage_query_duration_seconds",
			Help:    "Time an execution spent in the store, by kind.",
			Buckets: prometheus.DefBuckets,
		}, []string{"kind"}),
		resultsEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apiusage_results_evicted_total",
			Help: "Results of complete executions dropped before they expired, to keep within the memory for results.",
		}),
		resultBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "apiusage_results_bytes",
			Help: "Bytes the kept results of complete executions take, as counted against the memory for results.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.requestDuration, m.eventsIngested,
		m.eventsDuplicate, m.executionsRunning, m.executionsDone, m.queryDuration, m.resultsEvicted, m.resultBytes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// handleMetrics is GET /metrics: the Prometheus text exposition of the
// gatherer New was given.
func (s *Server) handleMetrics() http.Handler {
	if s.gatherer == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, errNoRoute(r))
		})
	}
	return promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{s},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// slogPrinter adapts the server's logger to promhttp's Logger.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) { p.s.log.Error("serve metrics", "err", fmt.Sprint(v...)) }
