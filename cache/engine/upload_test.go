package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/upstream/upstreamtest"
)

// An upload session idle for the upload timeout is discarded with its
// bytes; activity restarts the idle clock.
func TestAbandonedUploadExpires(t *testing.T) {
	inBubble(t, func(t *testing.T, s stores) {
		const idle = 15 * time.Minute
		e := newEnv(t, s, envOpt{fake: upstreamtest.NewFake(), engine: []engine.Option{engine.WithUploadTimeout(idle)}})
		ctx := context.Background()
		u, err := e.eng.StartUpload(ctx, "team/app", cache.UploadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := u.Append(ctx, 0, strings.NewReader("half a blob")); n != 11 || err != nil {
			t.Fatalf("append: %d %v", n, err)
		}
		if s.ingests != nil && s.ingests(t) != 1 {
			t.Fatalf("ingests while uploading: %d", s.ingests(t))
		}
		still := func(what string) {
			t.Helper()
			synctest.Wait()
			if _, err := e.eng.Upload(ctx, "team/app", u.ID()); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		time.Sleep(idle - time.Second)
		still("session gone before its idle timeout")
		if _, err := u.Append(ctx, 11, strings.NewReader(" and more")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(idle - time.Second)
		still("an append did not restart the idle clock")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if _, err := e.eng.Upload(ctx, "team/app", u.ID()); !errors.Is(err, cache.ErrUploadUnknown) {
			t.Fatalf("session after its idle timeout: %v, want ErrUploadUnknown", err)
		}
		if _, err := u.Append(ctx, 20, strings.NewReader("late")); !errors.Is(err, cache.ErrUploadUnknown) {
			t.Fatalf("append to an expired session: %v", err)
		}
		if s.ingests != nil && s.ingests(t) != 0 {
			t.Fatalf("ingests after expiry: %d", s.ingests(t))
		}
		if e.metric("airlock_push_upload_sessions_expired_total") != 1 {
			t.Fatal("expiry not counted")
		}
	})
}
