package cache_test

import (
	"fmt"
	"time"

	"github.com/tokenguard/tokenguard/cache"
)

func ExampleLRU() {
	c, err := cache.New[string, string](2)
	if err != nil {
		panic(err)
	}
	now := time.Now()
	c.Add("token-a", "alice", now.Add(time.Hour))
	c.Add("token-b", "bob", now.Add(-time.Second)) // already expired: not stored

	v, ok := c.Get("token-a")
	fmt.Println(v, ok)
	_, ok = c.Get("token-b")
	fmt.Println(ok)
	// Output:
	// alice true
	// false
}
