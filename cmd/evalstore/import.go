package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// importCmd posts an NDJSON file of predictions, feedback or offline
// evaluation records to a running server in batches, and stops at the first
// batch the server refuses.
func importCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: evalstore import [flags] FILE

Posts FILE (NDJSON, one record per line; - for stdin) in batches. -kind predictions and feedback post
to /api/v1/predictions and /api/v1/feedback. -kind evaluation posts one offline run: either FILE is
one JSON object {model, version, dataset, run, timestamp, records: [...]}, or FILE holds one prediction
record with its label per line and -model, -version, -dataset, -run (and -timestamp) name the run.
A refused batch stops the import; the records before it stay written.

`)
		fs.PrintDefaults()
	}
	url := fs.String("url", "http://localhost"+DefaultListen, "evalstore URL")
	kind := fs.String("kind", "predictions", "predictions, feedback or evaluation")
	batch := fs.Int("batch", 1000, "records per request")
	token := fs.String("token", os.Getenv("EVALSTORE_WRITE_TOKEN"), "bearer token of the write endpoints (env EVALSTORE_WRITE_TOKEN)")
	model := fs.String("model", "", "evaluation: the run's model")
	version := fs.String("version", "", "evaluation: the run's model version")
	dataset := fs.String("dataset", "", "evaluation: the run's dataset (train, main, holdout...)")
	runName := fs.String("run", "", "evaluation: the run's name")
	at := fs.String("timestamp", "", "evaluation: the run's time (RFC 3339 or Unix seconds; default now)")
	quiet := fs.Bool("q", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 || *batch < 1 {
		fs.Usage()
		return 2
	}
	path := map[string]string{"predictions": "/api/v1/predictions", "feedback": "/api/v1/feedback", "evaluation": "/api/v1/evaluations"}[*kind]
	if path == "" {
		fmt.Fprintf(stderr, "evalstore import: -kind %q: want predictions, feedback or evaluation\n", *kind)
		return 2
	}
	var in io.Reader = os.Stdin
	var size int64
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "evalstore import: %v\n", err)
			return 1
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in = f
	}
	imp := importer{
		url: strings.TrimRight(*url, "/") + path, token: *token, batch: *batch, kind: *kind,
		client: &http.Client{Timeout: 5 * time.Minute}, stderr: stderr, size: size, quiet: *quiet,
	}
	if *kind == "evaluation" {
		ts := strconv.FormatFloat(unixSeconds(time.Now()), 'f', -1, 64)
		if *at != "" {
			t, err := cliTime(*at, time.Now(), time.Now())
			if err != nil {
				fmt.Fprintf(stderr, "evalstore import: -timestamp: %v\n", err)
				return 2
			}
			ts = strconv.FormatFloat(unixSeconds(t), 'f', -1, 64)
		}
		imp.run = map[string]string{"model": *model, "version": *version, "dataset": *dataset, "run": *runName}
		imp.runTime = ts
	}
	n, batches, err := imp.importAll(context.Background(), in)
	if err != nil {
		fmt.Fprintf(stderr, "evalstore import: %v\n", err)
		fmt.Fprintf(stdout, "imported %d records in %d batches before the error\n", n, batches)
		return 1
	}
	fmt.Fprintf(stdout, "imported %d records in %d batches\n", n, batches)
	return 0
}

type importer struct {
	url, token, kind string
	batch            int
	client           *http.Client
	stderr           io.Writer
	size             int64 // bytes of the file (0: unknown)
	quiet            bool
	run              map[string]string // evaluation: the run's fields from flags
	runTime          string
	read             int64
	lastBar          time.Time
}

// refusedError is a batch the server answered 400 to.
type refusedError struct {
	firstLine int
	errs      []importRecordError
	msg       string
	lines     []int
}

type importRecordError struct {
	Index  int    `json:"index"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (e *refusedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the server refused the batch starting at line %d (nothing of it was written): %s", e.firstLine, e.msg)
	for _, re := range e.errs {
		where := "the batch"
		if re.Index >= 0 && re.Index < len(e.lines) {
			where = "line " + strconv.Itoa(e.lines[re.Index])
		}
		if re.Field != "" {
			fmt.Fprintf(&b, "\n  %s: %s: %s", where, re.Field, re.Reason)
		} else {
			fmt.Fprintf(&b, "\n  %s: %s", where, re.Reason)
		}
	}
	return b.String()
}

// importAll reads records and posts them in batches; it returns the records
// and batches written.
func (im *importer) importAll(ctx context.Context, in io.Reader) (int, int, error) {
	br := bufio.NewReaderSize(in, 1<<20)
	if im.kind == "evaluation" {
		// A whole run as one JSON object?
		peek, _ := br.Peek(1 << 20)
		if obj, ok := wholeRun(peek, br); ok {
			return im.postWhole(ctx, obj)
		}
		for _, k := range []string{"model", "version", "dataset", "run"} {
			if im.run[k] == "" {
				return 0, 0, fmt.Errorf("-kind evaluation with one record per line needs -%s (or a file holding the whole run as one JSON object)", k)
			}
		}
	}
	var (
		recs           [][]byte
		lines          []int
		lineNo         int
		written, count int
	)
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		if err := im.post(ctx, recs, lines); err != nil {
			return err
		}
		written += len(recs)
		count++
		recs, lines = recs[:0], lines[:0]
		im.progress(written, false)
		return nil
	}
	for {
		line, err := br.ReadBytes('\n')
		im.read += int64(len(line))
		if len(line) > 0 {
			lineNo++
			if t := bytes.TrimSpace(line); len(t) > 0 {
				recs = append(recs, t)
				lines = append(lines, lineNo)
				if len(recs) == im.batch {
					if ferr := flush(); ferr != nil {
						im.progress(written, true)
						return written, count, ferr
					}
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return written, count, err
		}
	}
	err := flush()
	im.progress(written, true)
	return written, count, err
}

// wholeRun reports whether the input is one JSON object with records (an
// evaluation run), and reads it.
func wholeRun(peek []byte, br *bufio.Reader) ([]byte, bool) {
	t := bytes.TrimSpace(peek)
	if len(t) == 0 || t[0] != '{' || !bytes.Contains(t, []byte(`"records"`)) {
		return nil, false
	}
	// One object, possibly spanning lines: NDJSON records never hold a
	// "records" key.
	all, err := io.ReadAll(br)
	if err != nil || !json.Valid(all) {
		return nil, false
	}
	return all, true
}

func (im *importer) postWhole(ctx context.Context, body []byte) (int, int, error) {
	var v struct {
		Records []json.RawMessage `json:"records"`
	}
	_ = json.Unmarshal(body, &v)
	lines := make([]int, len(v.Records)) // record indexes, not lines
	for i := range lines {
		lines[i] = i + 1
	}
	if err := im.send(ctx, body, "application/json", 1, lines); err != nil {
		return 0, 0, err
	}
	im.progress(len(v.Records), true)
	return len(v.Records), 1, nil
}

func (im *importer) post(ctx context.Context, recs [][]byte, lines []int) error {
	var b bytes.Buffer
	ctype := "application/x-ndjson"
	if im.kind == "evaluation" {
		ctype = "application/json"
		b.WriteString("{")
		for _, k := range []string{"model", "version", "dataset", "run"} {
			v, _ := json.Marshal(im.run[k])
			fmt.Fprintf(&b, "%q:%s,", k, v)
		}
		fmt.Fprintf(&b, `"timestamp":%s,"records":[`, im.runTime)
		b.Write(bytes.Join(recs, []byte(",")))
		b.WriteString("]}")
	} else {
		for _, r := range recs {
			b.Write(r)
			b.WriteByte('\n')
		}
	}
	return im.send(ctx, b.Bytes(), ctype, lines[0], lines)
}

func (im *importer) send(ctx context.Context, body []byte, ctype string, firstLine int, lines []int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, im.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	if im.token != "" {
		req.Header.Set("Authorization", "Bearer "+im.token)
	}
	resp, err := im.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var e struct {
		Error string `json:"error"`
		Data  struct {
			Errors []importRecordError `json:"errors"`
		} `json:"data"`
	}
	if json.Unmarshal(rb, &e) != nil || e.Error == "" {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(rb)))
	}
	if resp.StatusCode == http.StatusBadRequest {
		return &refusedError{firstLine: firstLine, errs: e.Data.Errors, msg: e.Error, lines: lines}
	}
	return fmt.Errorf("%s: %s", resp.Status, e.Error)
}

// progress draws a progress bar on stderr (at most every 100 ms, and at
// the end).
func (im *importer) progress(records int, final bool) {
	if im.quiet || (!final && time.Since(im.lastBar) < 100*time.Millisecond) {
		return
	}
	im.lastBar = time.Now()
	const width = 30
	if im.size > 0 {
		frac := min(float64(im.read)/float64(im.size), 1)
		n := int(frac * width)
		fmt.Fprintf(im.stderr, "\r[%s%s] %3.0f%% %d records", strings.Repeat("=", n), strings.Repeat(" ", width-n), 100*frac, records)
	} else {
		fmt.Fprintf(im.stderr, "\r%d records", records)
	}
	if final {
		fmt.Fprintln(im.stderr)
	}
}
