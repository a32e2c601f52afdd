package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/web"
)

func newArtifactsCommand() *cobra.Command {
	var (
		dataDir string
		out     string
		srv     serverClient
	)
	cmd := &cobra.Command{
		Use:   "artifacts COMMIT [JOB]",
		Short: "List the artifacts of a commit's newest build, or download them with --out (exit 3 if there are none)",
		Long: `List the files the jobs of a commit's newest build uploaded (their artifacts and
test reports), or, with --out, download them: a JOB's files into DIR at their
paths, every job's into DIR/<job name>/. JOB is a job's name as Volt shows it
("package", "test (go=1.26) 1/4") or its index in the build.`,
		Example: `  volt artifacts 3f2a9c1
  volt artifacts 3f2a9c1 package --out ./dist
  volt artifacts 3f2a9c1 --server http://ci.example.com:8080 --out ./all`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var src artifactSource
			if cmd.Flags().Changed("server") {
				src = &srv
			} else {
				db, err := store.OpenReadOnly(dataDir)
				if err != nil {
					return fatal("open artifacts", err)
				}
				defer db.Close()
				src = dbArtifacts{db}
			}
			jobs, err := src.commitArtifacts(args[0])
			if err != nil {
				return err
			}
			if len(args) == 2 {
				j, err := pickJob(jobs, args[1])
				if err != nil {
					return err
				}
				jobs = []web.JobArtifacts{j}
			}
			if out == "" {
				return listArtifacts(os.Stdout, jobs)
			}
			return downloadArtifacts(src, jobs, out, len(args) == 2)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dataDir, "data-dir", ".volt", "the reporter's data directory (the one volt up or volt reporter was given)")
	fs.StringVar(&out, "out", "", "download into `DIR` instead of listing")
	srv.register(fs, false)
	srv.server = ""
	fs.Lookup("server").DefValue = ""
	fs.Lookup("server").Usage = "ask this Volt web server (for example " + defaultServer + ") instead of reading --data-dir"
	return cmd
}

// artifactSource is where the artifacts are read: the data directory or a
// web server.
type artifactSource interface {
	commitArtifacts(commit string) ([]web.JobArtifacts, error)
	copyArtifact(w io.Writer, j web.JobArtifacts, f web.ArtifactFile) error
}

// dbArtifacts reads them from the reporter's data directory.
type dbArtifacts struct{ db *store.DB }

func (d dbArtifacts) commitArtifacts(commit string) ([]web.JobArtifacts, error) {
	jobs, err := d.db.CommitArtifacts(commit)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound("no artifacts for commit %s in %s (its jobs declare none, have not finished, or they were pruned)", commit, d.db.Dir())
	case errors.Is(err, store.ErrAmbiguous):
		return nil, usageErr("commit prefix %s matches several commits: give more characters", commit)
	case errors.Is(err, store.ErrInvalidCommit):
		return nil, usageErr("%v", err)
	case err != nil:
		return nil, fatal("look up "+commit, err)
	}
	out := make([]web.JobArtifacts, len(jobs))
	for i, j := range jobs {
		out[i] = web.JobArtifacts{BuildID: j.BuildID, Index: j.Index, JobID: j.JobID, Name: j.Name, Attempt: j.Attempt, Repo: j.Repo, Commit: j.Commit, Build: j.Build}
		for _, f := range j.Files {
			out[i].Files = append(out[i].Files, web.ArtifactFile{Path: f.Path, Kind: f.Kind, Size: f.Size, SHA256: fmt.Sprintf("%x", f.SHA256), Mode: f.Mode})
		}
	}
	return out, nil
}

func (d dbArtifacts) copyArtifact(w io.Writer, j web.JobArtifacts, f web.ArtifactFile) error {
	_, err := d.db.CopyArtifact(w, j.JobID, j.Attempt, f.Path)
	return err
}

func (c *serverClient) commitArtifacts(commit string) ([]web.JobArtifacts, error) {
	var page web.CommitArtifacts
	if err := c.do("GET", "/api/v2/commits/"+commit+"/artifacts", &page); err != nil {
		return nil, err
	}
	return page.Jobs, nil
}

// copyArtifact streams one file from the server.
func (c *serverClient) copyArtifact(w io.Writer, j web.JobArtifacts, f web.ArtifactFile) error {
	base, err := c.base()
	if err != nil {
		return err
	}
	if c.token == "" {
		c.token = os.Getenv("VOLT_TOKEN")
	}
	req, err := http.NewRequest("GET", base+web.ArtifactURL(j.BuildID, j.Index, f.Path), nil)
	if err != nil {
		return usageErr("--server %q: %v", c.server, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := c.http
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("no answer from %s: is Volt running there? pass --server: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s of job %s: %s answered %s", f.Path, jobLabel(j), base, resp.Status)
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && n != f.Size {
		err = fmt.Errorf("got %d of its %d bytes", n, f.Size)
	}
	if err != nil {
		return fmt.Errorf("download %s of job %s: %w", f.Path, jobLabel(j), err)
	}
	return nil
}

// jobLabel is how a job is named to users: its name, or its index while
// its result is not recorded.
func jobLabel(j web.JobArtifacts) string {
	if j.Name != "" {
		return j.Name
	}
	return "#" + strconv.Itoa(int(j.Index))
}

// pickJob finds JOB by name, or by index.
func pickJob(jobs []web.JobArtifacts, name string) (web.JobArtifacts, error) {
	var names []string
	for _, j := range jobs {
		if j.Name == name {
			return j, nil
		}
		names = append(names, strconv.Quote(jobLabel(j)))
	}
	if i, err := strconv.Atoi(name); err == nil {
		for _, j := range jobs {
			if int(j.Index) == i {
				return j, nil
			}
		}
	}
	return web.JobArtifacts{}, notFound("no job %q with artifacts in this build: the jobs with artifacts are %s", name, strings.Join(names, ", "))
}

func listArtifacts(w io.Writer, jobs []web.JobArtifacts) error {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tPATH\tKIND\tSIZE\tSHA256")
	for _, j := range jobs {
		for _, f := range j.Files {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.16s\n", jobLabel(j), f.Path, f.Kind, f.Size, f.SHA256)
		}
	}
	return tw.Flush()
}

// downloadArtifacts writes the files of jobs under dir: at their paths for
// one job, under a directory per job otherwise. Nothing is written out of
// dir (os.Root), whatever the paths say.
func downloadArtifacts(src artifactSource, jobs []web.JobArtifacts, dir string, oneJob bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fatal("create "+dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fatal("open "+dir, err)
	}
	defer root.Close()
	files := 0
	for _, j := range jobs {
		prefix := ""
		if !oneJob {
			prefix = jobDir(j) + "/"
		}
		for _, f := range j.Files {
			if err := messages.ValidateArtifactPath(f.Path); err != nil {
				return fmt.Errorf("job %s: %w", jobLabel(j), err)
			}
			p := prefix + f.Path
			if err := writeArtifact(root, p, f.Mode, func(w io.Writer) error { return src.copyArtifact(w, j, f) }); err != nil {
				return err
			}
			fmt.Printf("%s\n", path.Join(dir, p))
			files++
		}
	}
	if files == 0 {
		return notFound("no files to download")
	}
	return nil
}

// jobDir is a job's directory name: its name with "/" (a shard, "1/4")
// written as " of " ("1 of 4").
func jobDir(j web.JobArtifacts) string {
	name := strings.ReplaceAll(jobLabel(j), "/", " of ")
	if name == "." || name == ".." {
		name = "#" + strconv.Itoa(int(j.Index))
	}
	return name
}

// writeArtifact writes one downloaded file at p with mode's permission
// bits (see messages.ArtifactMode: an executable stays one).
func writeArtifact(root *os.Root, p string, mode uint32, copyTo func(io.Writer) error) (err error) {
	if d := path.Dir(p); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fatal("create "+d, err)
		}
	}
	perm := os.FileMode(messages.ArtifactMode(mode))
	f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fatal("create "+p, err)
	}
	if err := f.Chmod(perm); err != nil {
		return errors.Join(fatal("create "+p, err), f.Close())
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fatal("write "+p, cerr)
		}
	}()
	return copyTo(f)
}
