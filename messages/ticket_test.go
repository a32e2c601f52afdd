package messages

import "testing"

func TestLogTicketBindsEveryField(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	job := &Job{Id: 7, Repo: "/srv/r.git", Commit: "88e7207773cbf7ac1165ce1c04f30b5b9f416a91", Build: 2}
	tk := LogTicket(key, job, 3, "r1")
	if !ValidTicket(key, tk, job, 3, "r1") {
		t.Fatal("a ticket does not verify for what it was made for")
	}
	other := func(mut func(j *Job)) *Job {
		j := &Job{Id: job.Id, Repo: job.Repo, Commit: job.Commit, Build: job.Build}
		mut(j)
		return j
	}
	cases := map[string]bool{
		"another runner":   ValidTicket(key, tk, job, 3, "r2"),
		"another attempt":  ValidTicket(key, tk, job, 4, "r1"),
		"another job id":   ValidTicket(key, tk, other(func(j *Job) { j.Id = 8 }), 3, "r1"),
		"another repo":     ValidTicket(key, tk, other(func(j *Job) { j.Repo = "/srv/s.git" }), 3, "r1"),
		"another commit":   ValidTicket(key, tk, other(func(j *Job) { j.Commit = "99e7207773cbf7ac1165ce1c04f30b5b9f416a91" }), 3, "r1"),
		"another build":    ValidTicket(key, tk, other(func(j *Job) { j.Build = 3 }), 3, "r1"),
		"another build id": ValidTicket(key, tk, other(func(j *Job) { j.BuildId = 5 }), 3, "r1"),
		"another index":    ValidTicket(key, tk, other(func(j *Job) { j.Index = 1 }), 3, "r1"),
		"needs claimed":    ValidTicket(key, tk, other(func(j *Job) { j.Cell = &PipelineJob{Needs: []int32{0}} }), 3, "r1"),
		"another key":      ValidTicket([]byte("another key, another cluster...."), tk, job, 3, "r1"),
		"no ticket":        ValidTicket(key, nil, job, 3, "r1"),
		"no key":           ValidTicket(nil, LogTicket(nil, job, 3, "r1"), job, 3, "r1"),
		"fields shifted":   ValidTicket(key, LogTicket(key, &Job{Id: 7, Repo: "/srv/r.git" + job.Commit[:1], Commit: job.Commit[1:], Build: 2}, 3, "r1"), job, 3, "r1"),
	}
	for name, ok := range cases {
		if ok {
			t.Errorf("%s: the ticket verified", name)
		}
	}
}
