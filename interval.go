package apiusage

import (
	"strconv"
	"strings"
	"time"
)

// Interval is a half-open span of time [Start, End), in UTC.
type Interval struct {
	Start, End time.Time
}

// String formats the interval as ISO-8601 start/end in UTC.
func (iv Interval) String() string {
	return iv.Start.UTC().Format(time.RFC3339Nano) + "/" + iv.End.UTC().Format(time.RFC3339Nano)
}

// Contains reports whether t lies in [Start, End).
func (iv Interval) Contains(t time.Time) bool {
	return !t.Before(iv.Start) && t.Before(iv.End)
}

// Hours returns the first and the end (exclusive) of the hours whose start
// lies in the interval, as hours since the Unix epoch. Usage is kept in hourly
// rollups, so an hour counts towards a query exactly when its first instant is
// inside the interval: a bound that falls inside an hour moves to the next
// whole hour. On hour-aligned intervals, which every date-only interval is,
// this is the exact half-open interval.
func (iv Interval) Hours() (first, end int64) {
	return ceilHour(iv.Start), ceilHour(iv.End)
}

func ceilHour(t time.Time) int64 {
	s := t.Unix()
	h := s / 3600
	if s%3600 < 0 {
		h-- // floor for instants before 1970
	}
	if s != h*3600 || t.Nanosecond() != 0 {
		h++
	}
	return h
}

// ParseInterval parses an ISO-8601 interval "start/end" where each side is a
// date or date-time of any precision (2020, 2020-02, 2020-02-01,
// 2020-02-01T10, ...T10:00, ...T10:00:00, ...T10:00:00.123), with an optional
// zone (Z, +02:00, +0200, +02; none means UTC), or a duration (P7D, P1M,
// PT12H, P1W) on at most one side. A side of lower precision means its first
// instant. The start must be before the end.
//
// Every failure is an *Error with CodeBadRequest that quotes the interval.
func ParseInterval(s string) (Interval, error) {
	bad := func(why string) (Interval, error) {
		return Interval{}, Errorf(CodeBadRequest, "invalid interval %q: %s", s, why)
	}
	left, right, ok := strings.Cut(s, "/")
	if !ok || strings.Contains(right, "/") {
		return bad("want start/end")
	}
	leftDur, rightDur := isDuration(left), isDuration(right)
	var iv Interval
	switch {
	case leftDur && rightDur:
		return bad("at most one side may be a duration")
	case leftDur:
		end, err := parseInstant(right)
		if err != nil {
			return bad(err.Error())
		}
		d, err := parseDuration(left)
		if err != nil {
			return bad(err.Error())
		}
		iv = Interval{Start: d.subtractFrom(end), End: end}
	case rightDur:
		start, err := parseInstant(left)
		if err != nil {
			return bad(err.Error())
		}
		d, err := parseDuration(right)
		if err != nil {
			return bad(err.Error())
		}
		iv = Interval{Start: start, End: d.addTo(start)}
	default:
		start, err := parseInstant(left)
		if err != nil {
			return bad(err.Error())
		}
		end, err := parseInstant(right)
		if err != nil {
			return bad(err.Error())
		}
		iv = Interval{Start: start, End: end}
	}
	if iv.Start.Year() < 1 || iv.End.Year() > 9999 {
		return bad("out of range")
	}
	if !iv.Start.Before(iv.End) {
		return bad("start must be before end")
	}
	return iv, nil
}

func isDuration(s string) bool { return len(s) > 0 && (s[0] == 'P' || s[0] == 'p') }

// parseInstant parses an ISO-8601 date or date-time in extended format.
func parseInstant(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errString("empty side")
	}
	datePart, timePart, hasTime := strings.Cut(s, "T")
	if !hasTime {
		datePart, timePart, hasTime = strings.Cut(s, "t")
	}
	loc := time.UTC
	if !hasTime {
		// A date alone may still carry a zone? ISO-8601 does not allow it;
		// neither do we.
		timePart = ""
	} else {
		var zoneErr error
		timePart, loc, zoneErr = cutZone(timePart)
		if zoneErr != nil {
			return time.Time{}, zoneErr
		}
	}
	year, month, day, err := parseDate(datePart)
	if err != nil {
		return time.Time{}, err
	}
	if hasTime && (month == 0 || day == 0) {
		return time.Time{}, errString("a time needs a full date")
	}
	if month == 0 {
		month = 1
	}
	if day == 0 {
		day = 1
	}
	var hour, minute, sec, nsec int
	if hasTime {
		hour, minute, sec, nsec, err = parseClock(timePart)
		if err != nil {
			return time.Time{}, err
		}
	}
	if day > daysIn(year, time.Month(month)) {
		return time.Time{}, errString("day out of range")
	}
	if hour == 24 {
		// 24:00 is the end of the day, allowed only exactly.
		if minute != 0 || sec != 0 || nsec != 0 {
			return time.Time{}, errString("hour out of range")
		}
		t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, loc).AddDate(0, 0, 1)
		return t.UTC(), nil
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc).UTC(), nil
}

func daysIn(year int, m time.Month) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// parseDate parses YYYY, YYYY-MM or YYYY-MM-DD; month and day are 0 when absent.
func parseDate(s string) (year, month, day int, err error) {
	parts := strings.Split(s, "-")
	if len(parts) > 3 {
		return 0, 0, 0, errString("bad date " + strconv.Quote(s))
	}
	year, err = digits(parts[0], 4)
	if err != nil {
		return 0, 0, 0, errString("bad year in " + strconv.Quote(s))
	}
	if len(parts) > 1 {
		if month, err = digits(parts[1], 2); err != nil || month < 1 || month > 12 {
			return 0, 0, 0, errString("bad month in " + strconv.Quote(s))
		}
	}
	if len(parts) > 2 {
		if day, err = digits(parts[2], 2); err != nil || day < 1 || day > 31 {
			return 0, 0, 0, errString("bad day in " + strconv.Quote(s))
		}
	}
	return year, month, day, nil
}

// parseClock parses hh, hh:mm, hh:mm:ss and hh:mm:ss.fff (any number of
// fraction digits up to nanoseconds; a comma is accepted as the separator).
func parseClock(s string) (hour, minute, sec, nsec int, err error) {
	whole, frac, hasFrac := strings.Cut(strings.Replace(s, ",", ".", 1), ".")
	parts := strings.Split(whole, ":")
	if len(parts) > 3 || (hasFrac && len(parts) != 3) {
		return 0, 0, 0, 0, errString("bad time " + strconv.Quote(s))
	}
	vals := [3]int{}
	limits := [3]int{24, 59, 60}
	for i, p := range parts {
		v, err := digits(p, 2)
		if err != nil || v > limits[i] {
			return 0, 0, 0, 0, errString("bad time " + strconv.Quote(s))
		}
		vals[i] = v
	}
	if vals[2] == 60 {
		return 0, 0, 0, 0, errString("leap seconds are not supported")
	}
	if hasFrac {
		if frac == "" || len(frac) > 9 {
			return 0, 0, 0, 0, errString("bad fraction in " + strconv.Quote(s))
		}
		v, err := digits(frac, len(frac))
		if err != nil {
			return 0, 0, 0, 0, errString("bad fraction in " + strconv.Quote(s))
		}
		for i := len(frac); i < 9; i++ {
			v *= 10
		}
		nsec = v
	}
	return vals[0], vals[1], vals[2], nsec, nil
}

// cutZone splits a trailing zone designator off a time.
func cutZone(s string) (string, *time.Location, error) {
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		return s[:len(s)-1], time.UTC, nil
	}
	i := strings.LastIndexAny(s, "+-")
	if i < 0 {
		return s, time.UTC, nil
	}
	zone := s[i+1:]
	var hh, mm int
	var err error
	switch {
	case len(zone) == 2:
		hh, err = digits(zone, 2)
	case len(zone) == 4:
		hh, err = digits(zone[:2], 2)
		if err == nil {
			mm, err = digits(zone[2:], 2)
		}
	case len(zone) == 5 && zone[2] == ':':
		hh, err = digits(zone[:2], 2)
		if err == nil {
			mm, err = digits(zone[3:], 2)
		}
	default:
		err = errString("bad zone")
	}
	if err != nil || hh > 23 || mm > 59 {
		return "", nil, errString("bad zone " + strconv.Quote(s[i:]))
	}
	offset := hh*3600 + mm*60
	if s[i] == '-' {
		offset = -offset
	}
	return s[:i], time.FixedZone("", offset), nil
}

// digits parses exactly n ASCII digits.
func digits(s string, n int) (int, error) {
	if len(s) != n {
		return 0, errString("bad number")
	}
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errString("bad number")
		}
		v = v*10 + int(c-'0')
	}
	return v, nil
}

// isoDuration is a parsed ISO-8601 duration. Years, months, weeks and days are
// calendar units; hours, minutes and seconds are exact.
type isoDuration struct {
	years, months, days int
	clock               time.Duration
}

// addTo and subtractFrom apply the units from the largest to the smallest in
// both directions, as Joda-Time's Interval (what the reference service
// parses intervals with) does: calendar units first, then the clock.
func (d isoDuration) addTo(t time.Time) time.Time {
	return addCalendar(t, d.years, d.months, d.days).Add(d.clock)
}

func (d isoDuration) subtractFrom(t time.Time) time.Time {
	return addCalendar(t, -d.years, -d.months, -d.days).Add(-d.clock)
}

// addCalendar adds years and months, then days. A day of the month past the
// end of the month reached becomes its last day, as in ISO-8601 arithmetic:
// one month after January 31 is the end of February, where time.AddDate
// would normalize February 31 to early March.
func addCalendar(t time.Time, years, months, days int) time.Time {
	y, m, d := t.Date()
	hh, mm, ss := t.Clock()
	first := time.Date(y+years, m+time.Month(months), 1, 0, 0, 0, 0, t.Location())
	d = min(d, daysIn(first.Year(), first.Month()))
	return time.Date(first.Year(), first.Month(), d+days, hh, mm, ss, t.Nanosecond(), t.Location())
}

// parseDuration parses PnYnMnWnDTnHnMnS; every number is a whole number but
// the seconds, which may have a fraction. At least one part must be present.
func parseDuration(s string) (isoDuration, error) {
	var d isoDuration
	rest := asciiUpper(s)[1:]
	inTime := false
	any := false
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return d, errString("bad duration " + strconv.Quote(s))
			}
			inTime = true
			rest = rest[1:]
			if rest == "" {
				return d, errString("bad duration " + strconv.Quote(s))
			}
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 || i == len(rest) || i > 6 {
			return d, errString("bad duration " + strconv.Quote(s))
		}
		num, unit := rest[:i], rest[i]
		rest = rest[i+1:]
		if strings.Contains(num, ".") && !(inTime && unit == 'S') {
			return d, errString("only seconds may have a fraction in " + strconv.Quote(s))
		}
		if unit == 'S' && inTime {
			secs, ok := parseSeconds(num)
			if !ok {
				return d, errString("bad duration " + strconv.Quote(s))
			}
			d.clock += secs
			any = true
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			return d, errString("bad duration " + strconv.Quote(s))
		}
		switch {
		case !inTime && unit == 'Y':
			d.years += n
		case !inTime && unit == 'M':
			d.months += n
		case !inTime && unit == 'W':
			d.days += 7 * n
		case !inTime && unit == 'D':
			d.days += n
		case inTime && unit == 'H':
			d.clock += time.Duration(n) * time.Hour
		case inTime && unit == 'M':
			d.clock += time.Duration(n) * time.Minute
		default:
			return d, errString("bad duration " + strconv.Quote(s))
		}
		any = true
	}
	if !any {
		return d, errString("bad duration " + strconv.Quote(s))
	}
	return d, nil
}

// parseSeconds parses whole seconds with an optional decimal fraction, in
// integers: through a float64, 8.2 seconds would come out as 8.199999999.
func parseSeconds(num string) (time.Duration, bool) {
	whole, frac, _ := strings.Cut(num, ".")
	if whole == "" && frac == "" || strings.Contains(frac, ".") || len(frac) > 9 {
		return 0, false
	}
	var secs, nsec int
	var err error
	if whole != "" {
		if secs, err = digits(whole, len(whole)); err != nil {
			return 0, false
		}
	}
	if frac != "" {
		if nsec, err = digits(frac, len(frac)); err != nil {
			return 0, false
		}
		for i := len(frac); i < 9; i++ {
			nsec *= 10
		}
	}
	return time.Duration(secs)*time.Second + time.Duration(nsec), true
}

// asciiUpper upper-cases ASCII letters only, so that no other letter (such
// as the long s, whose upper case is S) can pose as a duration's unit.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

type errString string

func (e errString) Error() string { return string(e) }
