package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"version", []string{"version"}, 0, "evalstore " + version, ""},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"bad flag", []string{"serve", "-nope"}, 2, "", "flag provided but not defined"},
		{"default is serve", []string{"-nope"}, 2, "", "flag provided but not defined"},
		{"bad duration", []string{"serve", "-retention", "soon"}, 2, "", `invalid value "soon" for flag -retention`},
		{"TLS needs both", []string{"serve", "-tls-cert", "c.pem"}, 2, "", "TLS needs both"},
		{"basic auth needs both", []string{"serve", "-write-user", "u"}, 2, "", "write basic auth needs both"},
		{"help", []string{"serve", "-h"}, 0, "", "-data-dir"},
		{"stray argument", []string{"serve", "extra"}, 2, "", `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d (stderr %q)", code, tc.wantCode, errb.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout %q does not contain %q", out.String(), tc.wantOut)
			}
			if !strings.Contains(errb.String(), tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tc.wantErr)
			}
		})
	}
}
