package loadtest

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Churn is the ground truth for one user who leaves.
type Churn struct {
	User string
	// TaperStart is when the user's activity starts to fall; At is the last
	// moment they are active.
	TaperStart, At time.Time
}

// AppConfig shapes a population of app users.
type AppConfig struct {
	Users int
	// Start is the event time the simulation begins; Duration how much event
	// time it covers.
	Start    time.Time
	Duration time.Duration
	// ChurnFraction of users leave, at times spread over the second half
	// of Duration, after tapering for TaperLead.
	ChurnFraction float64
	TaperLead     time.Duration
	// SessionsPerDay is the mean session rate of an active user. Default 3.
	SessionsPerDay float64
	Seed           uint64
}

type appUser struct {
	id       string
	rate     float64 // sessions per day at full activity
	buyer    float64 // probability a session includes a purchase
	platform string
	churn    *Churn
	next     time.Time
	session  int
}

// App generates login, purchase and support-ticket events for app users.
type App struct {
	cfg     AppConfig
	rng     *rand.Rand
	users   []*appUser
	pending arrivals
	truth   []Churn
}

// NewApp builds the population and decides, from the seed, who churns and when.
func NewApp(cfg AppConfig) *App {
	if cfg.Start.IsZero() {
		cfg.Start = time.Now().UTC().Add(-cfg.Duration)
	}
	if cfg.SessionsPerDay <= 0 {
		cfg.SessionsPerDay = 3
	}
	if cfg.TaperLead <= 0 {
		cfg.TaperLead = 7 * 24 * time.Hour
	}
	a := &App{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0xa99))}
	nChurn := int(math.Round(float64(cfg.Users) * cfg.ChurnFraction))
	churners := map[int]int{}
	for rank, i := range a.rng.Perm(cfg.Users)[:nChurn] {
		churners[i] = rank
	}
	platforms := []string{"ios", "android", "web"}
	for i := range cfg.Users {
		u := &appUser{
			id:       fmt.Sprintf("u-%05d", i),
			rate:     cfg.SessionsPerDay * math.Exp(a.rng.NormFloat64()*0.4),
			buyer:    0.1 + 0.3*a.rng.Float64(),
			platform: platforms[a.rng.IntN(len(platforms))],
		}
		if rank, ok := churners[i]; ok {
			half := cfg.Duration / 2
			at := cfg.Start.Add(half)
			if nChurn > 1 {
				at = at.Add(time.Duration(float64(half) * float64(rank) / float64(nChurn-1)))
			}
			c := Churn{User: u.id, At: at, TaperStart: at.Add(-cfg.TaperLead)}
			u.churn = &c
			a.truth = append(a.truth, c)
		}
		u.next = cfg.Start.Add(a.gap(u, cfg.Start))
		a.users = append(a.users, u)
	}
	return a
}

// Truth lists the users who churn.
func (a *App) Truth() []Churn { return a.truth }

// activity is the user's activity level at t: 1 normally, falling to 0.15
// over the taper, 0 after churning.
func (a *App) activity(u *appUser, t time.Time) float64 {
	c := u.churn
	if c == nil || t.Before(c.TaperStart) {
		return 1
	}
	if !t.Before(c.At) {
		return 0
	}
	p := float64(t.Sub(c.TaperStart)) / float64(c.At.Sub(c.TaperStart))
	return 1 - 0.85*p
}

// gap draws the time to the user's next session (exponential, thinned by
// activity so a tapering user comes back less often).
func (a *App) gap(u *appUser, t time.Time) time.Duration {
	rate := u.rate * math.Max(a.activity(u, t), 0.05) / 86400 // per second
	return time.Duration(a.rng.ExpFloat64() / rate * float64(time.Second))
}

// Until emits every event with event time before t, in time order.
func (a *App) Until(t time.Time, emit func(Event)) {
	for _, u := range a.users {
		for u.next.Before(t) {
			ts := u.next
			if a.activity(u, ts) == 0 {
				u.next = t.Add(100 * 365 * 24 * time.Hour) // gone for good
				break
			}
			a.session(u, ts)
			u.next = ts.Add(a.gap(u, ts))
		}
	}
	for len(a.pending) > 0 && !a.pending[0].Arrival.After(t) {
		emit(heap.Pop(&a.pending).(Event))
	}
}

// Drain emits every event still pending.
func (a *App) Drain(emit func(Event)) {
	for len(a.pending) > 0 {
		emit(heap.Pop(&a.pending).(Event))
	}
}

// session renders one session: a login, some purchases, maybe a ticket.
// Churners file more tickets while they taper.
func (a *App) session(u *appUser, ts time.Time) {
	u.session++
	sid := fmt.Sprintf("s-%s-%d", u.id[2:], u.session)
	a.push(u, ts, "login", sid, 0)
	t := ts
	act := a.activity(u, ts)
	for a.rng.Float64() < u.buyer*act {
		t = t.Add(time.Duration(30+a.rng.IntN(300)) * time.Second)
		a.push(u, t, "purchase", sid, math.Round((5+a.rng.ExpFloat64()*20)*100)/100)
	}
	ticket := 0.03
	if act < 1 {
		ticket = 0.03 + 0.25*(1-act)
	}
	if a.rng.Float64() < ticket {
		a.push(u, t.Add(time.Duration(60+a.rng.IntN(600))*time.Second), "support_ticket", sid, 0)
	}
}

func (a *App) push(u *appUser, ts time.Time, typ, sid string, amount float64) {
	b := make([]byte, 0, 160)
	b = append(b, `{"user_id":"`...)
	b = append(b, u.id...)
	b = append(b, `","ts":"`...)
	b = ts.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, `","event_type":"`...)
	b = append(b, typ...)
	b = append(b, `","session_id":"`...)
	b = append(b, sid...)
	b = append(b, '"')
	if typ == "purchase" {
		b = append(b, `,"amount":`...)
		b = strconv.AppendFloat(b, amount, 'f', -1, 64)
	}
	b = append(b, `,"platform":"`...)
	b = append(b, u.platform...)
	b = append(b, `"}`...)
	heap.Push(&a.pending, Event{Key: u.id, Data: b, EventTime: ts, Arrival: ts})
}
