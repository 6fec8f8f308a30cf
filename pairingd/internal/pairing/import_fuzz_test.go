package pairing

import (
	"context"
	"testing"
	"time"
)

// FuzzImport feeds upstream <channel>-pairing.json and -allowFrom.json files
// to Import. Whatever the bytes: no panic; an error stores nothing; on
// success exactly the counted entries are stored, each valid as if it had
// been made here (normalised code, valid id and meta, queue limit kept).
func FuzzImport(f *testing.F) {
	fresh := time.Date(2026, 1, 2, 2, 50, 0, 0, time.UTC).Format(time.RFC3339Nano)
	f.Add([]byte(`{"version":1,"requests":[{"id":"111","code":"abcd2345","createdAt":"`+fresh+`","lastSeenAt":"`+fresh+`","meta":{"username":"alice"}},{"id":222,"code":"WXYZ6789","createdAt":"`+fresh+`","lastSeenAt":"`+fresh+`"}]}`),
		[]byte(`{"version":1,"allowFrom":["900","tg:901",902,"*",""]}`))
	f.Add([]byte(`{"version":2,"requests":[]}`), []byte(nil))
	f.Add([]byte(`{"version":1,"requests":[{"id":1e400,"code":"ABCD2345"}]}`), []byte(`{"version":1,"allowFrom":[{"id":1}]}`))
	f.Add([]byte(`{"version":1,"requests":[{"id":"\u202e1","code":"ABCD2345","createdAt":"`+fresh+`","meta":{"n":"\u0007"}}]}`), []byte(`{"version":1,"allowFrom":["\u200b9"]}`))
	f.Fuzz(func(t *testing.T, pairingJSON, allowJSON []byte) {
		if len(pairingJSON)+len(allowJSON) > 64<<10 {
			return
		}
		ctx := context.Background()
		s, st, _ := newService(t, nil)
		res, err := s.Import(ctx, "telegram", pairingJSON, allowJSON)
		pending, lerr := st.ListPending("")
		if lerr != nil {
			t.Fatal(lerr)
		}
		allowed, lerr := st.ListAllowed("")
		if lerr != nil {
			t.Fatal(lerr)
		}
		if err != nil {
			if len(pending)+len(allowed) != 0 {
				t.Fatalf("Import failed (%v) but stored %d pending and %d allowed", err, len(pending), len(allowed))
			}
			return
		}
		if len(pending) != res.PendingImported || len(allowed) != res.AllowedImported {
			t.Fatalf("result %+v but stored %d pending and %d allowed", res, len(pending), len(allowed))
		}
		if len(pending) > DefaultMaxPending {
			t.Fatalf("%d pending stored, over the limit of %d", len(pending), DefaultMaxPending)
		}
		for _, p := range pending {
			if c, err := NormalizeCode(p.Code); err != nil || c != p.Code {
				t.Fatalf("stored code %q is not a normalised code (%v)", p.Code, err)
			}
			if err := ValidateSenderID(p.SenderID); err != nil {
				t.Fatalf("stored pending sender: %v", err)
			}
			if err := ValidateMeta(p.Meta); err != nil {
				t.Fatalf("stored meta: %v", err)
			}
		}
		for _, a := range allowed {
			if a.SenderID == "*" || ValidateSenderID(a.SenderID) != nil {
				t.Fatalf("stored allowed sender %q", a.SenderID)
			}
		}
	})
}
