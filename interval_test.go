package apiusage_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// utc is a shorthand for an instant in UTC.
func utc(year int, month time.Month, day, hour, minute, sec, nsec int) time.Time {
	return time.Date(year, month, day, hour, minute, sec, nsec, time.UTC)
}

func day(year int, month time.Month, d int) time.Time { return utc(year, month, d, 0, 0, 0, 0) }

func TestParseInterval(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		start, end time.Time
	}{
		// Dates of every precision; a side means its first instant.
		{"years", "2020/2021", day(2020, 1, 1), day(2021, 1, 1)},
		{"months", "2020-02/2020-03", day(2020, 2, 1), day(2020, 3, 1)},
		{"days", "2020-02-01/2020-02-28", day(2020, 2, 1), day(2020, 2, 28)},
		{"mixed precision", "2020-01/2020-06-15", day(2020, 1, 1), day(2020, 6, 15)},
		// Date-times of every precision.
		{"hours", "2020-02-01T10/2020-02-01T11", utc(2020, 2, 1, 10, 0, 0, 0), utc(2020, 2, 1, 11, 0, 0, 0)},
		{"minutes", "2020-02-01T10:15/2020-02-01T10:16", utc(2020, 2, 1, 10, 15, 0, 0), utc(2020, 2, 1, 10, 16, 0, 0)},
		{"seconds", "2020-02-01T10:00:05/2020-02-01T10:00:06", utc(2020, 2, 1, 10, 0, 5, 0), utc(2020, 2, 1, 10, 0, 6, 0)},
		{"zero fraction", "2020-02-01T10:00:00.000Z/2020-02-02T10:00:00.000Z", utc(2020, 2, 1, 10, 0, 0, 0), utc(2020, 2, 2, 10, 0, 0, 0)},
		{"nanosecond fraction", "2020-02-01T10:00:00.123456789/2020-02-01T10:00:01.5", utc(2020, 2, 1, 10, 0, 0, 123456789), utc(2020, 2, 1, 10, 0, 1, 500000000)},
		{"comma fraction", "2020-02-01T10:00:00,25/2020-02-01T11", utc(2020, 2, 1, 10, 0, 0, 250000000), utc(2020, 2, 1, 11, 0, 0, 0)},
		{"lower-case t and z", "2020-02-01t10:00z/2020-02-01t11:00z", utc(2020, 2, 1, 10, 0, 0, 0), utc(2020, 2, 1, 11, 0, 0, 0)},
		{"24:00 is the next midnight", "2020-02-28/2020-02-28T24:00", day(2020, 2, 28), day(2020, 2, 29)},
		// Zones; none means UTC.
		{"zulu", "2020-02-01T10:00:00Z/2020-02-01T12:00:00Z", utc(2020, 2, 1, 10, 0, 0, 0), utc(2020, 2, 1, 12, 0, 0, 0)},
		{"extended offset", "2020-02-01T10:00+02:00/2020-02-01T12:00+02:00", utc(2020, 2, 1, 8, 0, 0, 0), utc(2020, 2, 1, 10, 0, 0, 0)},
		{"basic negative offset", "2020-02-01T10:00-0530/2020-02-01T12:00-0530", utc(2020, 2, 1, 15, 30, 0, 0), utc(2020, 2, 1, 17, 30, 0, 0)},
		{"hour offset", "2020-02-01T10+02/2020-02-01T11+02", utc(2020, 2, 1, 8, 0, 0, 0), utc(2020, 2, 1, 9, 0, 0, 0)},
		{"offset crosses midnight", "2020-02-01T01:00+02:00/2020-02-01T03:00Z", utc(2020, 1, 31, 23, 0, 0, 0), utc(2020, 2, 1, 3, 0, 0, 0)},
		{"offset crosses a year", "2021-01-01T00:30+01:00/2021-01-01T01:00", utc(2020, 12, 31, 23, 30, 0, 0), utc(2021, 1, 1, 1, 0, 0, 0)},
		{"different zones per side", "2020-02-01T10:00+02:00/2020-02-01T10:00-02:00", utc(2020, 2, 1, 8, 0, 0, 0), utc(2020, 2, 1, 12, 0, 0, 0)},
		// Durations on either side.
		{"days before", "P7D/2020-02-08", day(2020, 2, 1), day(2020, 2, 8)},
		{"month after", "2020-02-01/P1M", day(2020, 2, 1), day(2020, 3, 1)},
		{"hours after", "2020-02-01T00:00Z/PT12H", day(2020, 2, 1), utc(2020, 2, 1, 12, 0, 0, 0)},
		{"hours before", "PT12H/2020-02-01", utc(2020, 1, 31, 12, 0, 0, 0), day(2020, 2, 1)},
		{"week after", "2020-02-03/P1W", day(2020, 2, 3), day(2020, 2, 10)},
		{"every unit", "2020-01-01/P1Y2M3DT4H5M6.5S", day(2020, 1, 1), utc(2021, 3, 4, 4, 5, 6, 500000000)},
		{"decimal seconds are exact", "2020-01-01/PT8.2S", day(2020, 1, 1), utc(2020, 1, 1, 0, 0, 8, 200000000)},
		{"fraction without whole seconds", "2020-01-01/PT.25S", day(2020, 1, 1), utc(2020, 1, 1, 0, 0, 0, 250000000)},
		{"lower-case duration", "p1d/2020-01-02", day(2020, 1, 1), day(2020, 1, 2)},
		{"minutes and months are told apart", "2020-01-01/P1MT1M", day(2020, 1, 1), utc(2020, 2, 1, 0, 1, 0, 0)},
		// Month ends and leap years.
		{"leap day", "2020-02-29/2020-03-01", day(2020, 2, 29), day(2020, 3, 1)},
		{"leap day of a century leap year", "2000-02-29/2000-03-01", day(2000, 2, 29), day(2000, 3, 1)},
		{"month after January 31 in a leap year", "2020-01-31/P1M", day(2020, 1, 31), day(2020, 2, 29)},
		{"month after January 31", "2021-01-31/P1M", day(2021, 1, 31), day(2021, 2, 28)},
		{"month before March 31", "P1M/2021-03-31", day(2021, 2, 28), day(2021, 3, 31)},
		{"year after a leap day", "2020-02-29/P1Y", day(2020, 2, 29), day(2021, 2, 28)},
		{"month then day from the clamped end", "2021-01-31/P1M1D", day(2021, 1, 31), day(2021, 3, 1)},
		{"calendar before clock going back", "P1MT3H/2020-03-01T02:00", utc(2020, 1, 31, 23, 0, 0, 0), utc(2020, 3, 1, 2, 0, 0, 0)},
		{"December to January", "2020-12-15/P1M", day(2020, 12, 15), day(2021, 1, 15)},
		{"thirteen months back", "P13M/2021-02-01", day(2020, 1, 1), day(2021, 2, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iv, err := apiusage.ParseInterval(tt.in)
			if err != nil {
				t.Fatalf("ParseInterval(%q): %v", tt.in, err)
			}
			if !iv.Start.Equal(tt.start) || !iv.End.Equal(tt.end) {
				t.Errorf("ParseInterval(%q) = %v, want %v", tt.in, iv, apiusage.Interval{Start: tt.start, End: tt.end})
			}
			if iv.Start.Location() != time.UTC || iv.End.Location() != time.UTC {
				t.Errorf("ParseInterval(%q) locations = %v, %v, want UTC", tt.in, iv.Start.Location(), iv.End.Location())
			}
		})
	}
}

func TestParseIntervalInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"no slash", "2020-02-01"},
		{"two slashes", "2020-02-01/2020-02-02/2020-02-03"},
		{"empty start", "/2020-02-02"},
		{"empty end", "2020-02-01/"},
		{"just a slash", "/"},
		{"both durations", "P1D/P2D"},
		{"start equals end", "2020-02-01/2020-02-01"},
		{"start after end", "2020-02-02/2020-02-01"},
		{"equal after zones", "2020-02-01T10:00+02:00/2020-02-01T08:00Z"},
		{"month 13", "2020-13/2021"},
		{"month 0", "2020-00/2021"},
		{"day 0", "2020-02-00/2020-03-01"},
		{"day 32", "2020-01-32/2020-02-01"},
		{"February 30", "2020-02-30/2020-03-01"},
		{"February 29 of a common year", "2021-02-29/2021-03-01"},
		{"February 29 of a century", "1900-02-29/1900-03-01"},
		{"April 31", "2020-04-31/2020-05-01"},
		{"hour 25", "2020-02-01T25:00/2020-02-02"},
		{"24:01", "2020-02-01T24:01/2020-02-03"},
		{"minute 60", "2020-02-01T10:60/2020-02-02"},
		{"leap second", "2020-02-01T10:00:60/2020-02-02"},
		{"one-digit hour", "2020-02-01T1:00/2020-02-02"},
		{"time without a day", "2020-02T10/2020-03"},
		{"time without anything", "2020-02-01T/2020-02-02"},
		{"fraction without seconds", "2020-02-01T10:00.5/2020-02-02"},
		{"empty fraction", "2020-02-01T10:00:00./2020-02-02"},
		{"fraction too long", "2020-02-01T10:00:00.1234567891/2020-02-02"},
		{"zone hour 24", "2020-02-01T10:00+24:00/2020-02-02"},
		{"zone minute 60", "2020-02-01T10:00+02:60/2020-02-02"},
		{"zone of three digits", "2020-02-01T10:00+020/2020-02-02"},
		{"zone of letters", "2020-02-01T10:00+ab/2020-02-02"},
		{"zone by name", "2020-02-01T10:00CET/2020-02-02"},
		{"zone on a date", "2020-02-01+02:00/2020-02-02"},
		{"two-digit year", "20-02-01/2020-02-02"},
		{"five-digit year", "20200-02-01/2020-02-02"},
		{"year zero", "0000/0001"},
		{"past year 9999", "9999-12-31/P2D"},
		{"basic date format", "20200201/20200202"},
		{"garbage", "yesterday/today"},
		{"spaces", " 2020-02-01/2020-02-02"},
		{"unicode digits", "２０２０/2021"},
		{"empty duration", "2020-02-01/P"},
		{"duration with empty time", "2020-02-01/PT"},
		{"duration without unit", "2020-02-01/P1"},
		{"duration with unknown unit", "2020-02-01/P1X"},
		{"hours outside the time part", "2020-02-01/P1H"},
		{"weeks inside the time part", "2020-02-01/PT1W"},
		{"two T", "2020-02-01/PT1HT1M"},
		{"fraction of days", "2020-02-01/P1.5D"},
		{"a lone dot for seconds", "2020-02-01/PT.S"},
		{"two dots for seconds", "2020-02-01/PT1.2.3S"},
		{"negative duration", "2020-02-01/P-1D"},
		{"zero duration", "2020-02-01/P0D"},
		{"huge duration number", "2020-02-01/P1234567D"},
		{"long s posing as S", "2020-02-01/PT1\u017f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iv, err := apiusage.ParseInterval(tt.in)
			if err == nil {
				t.Fatalf("ParseInterval(%q) = %v, want an error", tt.in, iv)
			}
			var e *apiusage.Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseInterval(%q) error %T %v, want an *apiusage.Error", tt.in, err, err)
			}
			if e.Code != apiusage.CodeBadRequest {
				t.Errorf("ParseInterval(%q) code = %q, want %q", tt.in, e.Code, apiusage.CodeBadRequest)
			}
			if quoted := strconv.Quote(tt.in); !strings.Contains(e.Message, quoted) {
				t.Errorf("ParseInterval(%q) message = %q, want it to quote %s", tt.in, e.Message, quoted)
			}
			if (iv != apiusage.Interval{}) {
				t.Errorf("ParseInterval(%q) interval = %v on error, want the zero interval", tt.in, iv)
			}
		})
	}
}

func TestIntervalString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"2020-02-01/2020-02-02", "2020-02-01T00:00:00Z/2020-02-02T00:00:00Z"},
		{"2020-02-01T10:00+02:00/2020-02-01T10:00:00.5Z", "2020-02-01T08:00:00Z/2020-02-01T10:00:00.5Z"},
	}
	for _, tt := range tests {
		iv, err := apiusage.ParseInterval(tt.in)
		if err != nil {
			t.Fatalf("ParseInterval(%q): %v", tt.in, err)
		}
		if got := iv.String(); got != tt.want {
			t.Errorf("ParseInterval(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIntervalContains(t *testing.T) {
	iv := apiusage.Interval{Start: day(2020, 2, 1), End: day(2020, 2, 2)}
	tests := []struct {
		name string
		t    time.Time
		want bool
	}{
		{"start is inside", day(2020, 2, 1), true},
		{"last nanosecond is inside", day(2020, 2, 2).Add(-1), true},
		{"end is outside", day(2020, 2, 2), false},
		{"before start is outside", day(2020, 2, 1).Add(-1), false},
		{"same instant in another zone is inside", time.Date(2020, 2, 1, 3, 0, 0, 0, time.FixedZone("", 2*3600)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := iv.Contains(tt.t); got != tt.want {
				t.Errorf("%v.Contains(%v) = %v, want %v", iv, tt.t, got, tt.want)
			}
		})
	}
}

func TestIntervalHours(t *testing.T) {
	hourOf := func(t time.Time) int64 { return t.Unix() / 3600 }
	base := utc(2020, 2, 1, 10, 0, 0, 0)
	tests := []struct {
		name        string
		start, end  time.Time
		first, last int64 // last is exclusive
	}{
		{"aligned hours", base, base.Add(3 * time.Hour), hourOf(base), hourOf(base) + 3},
		{"aligned day", day(2020, 2, 1), day(2020, 2, 2), hourOf(day(2020, 2, 1)), hourOf(day(2020, 2, 1)) + 24},
		{"start inside an hour moves to the next", base.Add(time.Minute), base.Add(3 * time.Hour), hourOf(base) + 1, hourOf(base) + 3},
		{"start a nanosecond late moves to the next", base.Add(1), base.Add(3 * time.Hour), hourOf(base) + 1, hourOf(base) + 3},
		{"end inside an hour counts that hour", base, base.Add(2*time.Hour + time.Second), hourOf(base), hourOf(base) + 3},
		{"both inside the same hour is empty", base.Add(time.Minute), base.Add(59 * time.Minute), hourOf(base) + 1, hourOf(base) + 1},
		{"epoch", time.Unix(0, 0).UTC(), time.Unix(3600, 0).UTC(), 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iv := apiusage.Interval{Start: tt.start, End: tt.end}
			first, end := iv.Hours()
			if first != tt.first || end != tt.last {
				t.Errorf("%v.Hours() = %d, %d, want %d, %d", iv, first, end, tt.first, tt.last)
			}
		})
	}
}

// FuzzParseInterval checks that the parser never panics, that whatever it
// accepts is a non-empty interval in range, and that the interval's String
// parses back to the same interval. Its seeds run in plain go test.
func FuzzParseInterval(f *testing.F) {
	for _, s := range []string{
		"2020/2021", "2020-02/2020-03", "2020-02-01/2020-02-28",
		"2020-02-01T10/2020-02-01T11", "2020-02-01T10:00/2020-02-01T10:01",
		"2020-02-01T10:00:00.123456789Z/2020-02-02T10:00:00.000+02:00",
		"2020-02-01T10:00-0530/2020-02-01T12:00+02", "P7D/2020-02-08", "2020-02-01/P1M",
		"2020-01-31/P1M", "P1M/2021-03-31", "2020-01-01/P1Y2M3DT4H5M6.5S", "2020-02-29/P1Y",
		"0001-01-01T00:00-01:00/P1D", "9999-12-30/9999-12-31T24:00", "PT.5S/2020-01-01",
		"", "/", "//", "P1D/P1D", "2021-02-29/2021-03-01", "2020-02-01T24:01/2020-02-03",
		"2020-02-01T10:00+24:00/2020-02-02", "2020-02-01/PT1\u017f", "2020-02-01/P1234567D",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		iv, err := apiusage.ParseInterval(s)
		if err != nil {
			if code := apiusage.ErrorCode(err); code != apiusage.CodeBadRequest {
				t.Fatalf("ParseInterval(%q) error code %q, want %q", s, code, apiusage.CodeBadRequest)
			}
			return
		}
		if !iv.Start.Before(iv.End) {
			t.Fatalf("ParseInterval(%q) = %v, want start before end", s, iv)
		}
		if iv.Start.Year() < 1 || iv.End.Year() > 9999 {
			t.Fatalf("ParseInterval(%q) = %v, want years 1 to 9999", s, iv)
		}
		again, err := apiusage.ParseInterval(iv.String())
		if err != nil {
			t.Fatalf("ParseInterval(%q) = %v, but its String does not parse: %v", s, iv, err)
		}
		if !again.Start.Equal(iv.Start) || !again.End.Equal(iv.End) {
			t.Fatalf("ParseInterval(%q) = %v, reparsed %v", s, iv, again)
		}
	})
}
