package token

import "testing"

func TestToken_validOnlyForItsOrderAndJob(t *testing.T) {
	s, err := New([]byte("0123456789abcdef-secret"))
	if err != nil {
		t.Fatal(err)
	}
	tok := s.Token("o1", "j1")
	if !s.Valid("o1", "j1", tok) {
		t.Fatal("own token refused")
	}
	other, _ := New([]byte("another-secret-of-enough-length"))
	for name, ok := range map[string]bool{
		"other job":    s.Valid("o1", "j2", tok),
		"other order":  s.Valid("o2", "j1", tok),
		"shifted ids":  s.Valid("o1j", "1", tok),
		"other secret": other.Valid("o1", "j1", tok),
		"empty":        s.Valid("o1", "j1", ""),
		"not base64":   s.Valid("o1", "j1", "%%%"),
		"truncated":    s.Valid("o1", "j1", tok[:len(tok)-2]),
	} {
		if ok {
			t.Errorf("%s: token accepted", name)
		}
	}
}

func TestNew_rejectsShortSecret(t *testing.T) {
	if _, err := New([]byte("short")); err == nil {
		t.Fatal("short secret accepted")
	}
}

func TestSigner_concurrentUseGivesStableTokens(t *testing.T) {
	s, err := New([]byte("0123456789abcdef-secret"))
	if err != nil {
		t.Fatal(err)
	}
	want := s.Token("o1", "j1")
	errs := make(chan string, 8)
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 500 {
				if got := s.Token("o1", "j1"); got != want || !s.Valid("o1", "j1", got) {
					errs <- got
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	close(errs)
	for got := range errs {
		t.Fatalf("token %q under concurrency, want %q", got, want)
	}
}
