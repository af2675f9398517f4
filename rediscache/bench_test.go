package rediscache_test

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/tokenguard/tokenguard/internal/fakeas"
)

// BenchmarkTwoReplicas drives two replicas of one API, each with its own
// LRU, sharing one real Redis, with 1,000 tokens picked at random for each
// request and a random replica serving it. It reports introspections per
// distinct token: 1 means a token one replica introspected cost the other
// nothing. (Two replicas missing the same new token at the same instant each
// introspect it: singleflight is per process.)
func BenchmarkTwoReplicas(b *testing.B) {
	as := fakeas.Start()
	b.Cleanup(as.Close)
	keyJSON, _ := as.NewApp(project)
	rs := startRedis(b)
	replicas := []*replica{newReplica(b, as, keyJSON, rs, "api"), newReplica(b, as, keyJSON, rs, "api")}
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = as.Mint(fakeas.Token{Subject: fmt.Sprint("u", i), Audience: []string{project}})
	}
	before := as.Calls()
	var bad atomic.Int64
	var seed atomic.Uint64
	used := make([]atomic.Bool, len(tokens))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 7))
		for pb.Next() {
			i := rng.IntN(len(tokens))
			used[i].Store(true)
			if replicas[rng.IntN(2)].get(tokens[i]) != 200 {
				bad.Add(1)
			}
		}
	})
	b.StopTimer()
	if bad.Load() > 0 {
		b.Fatalf("%d requests refused", bad.Load())
	}
	seen := 0
	for i := range used {
		if used[i].Load() {
			seen++
		}
	}
	b.ReportMetric(float64(as.Calls()-before)/float64(seen), "introspections/token")
}
