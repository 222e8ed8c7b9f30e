package embedded

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// Frames are how both the WAL and snapshots are laid out on disk:
//
//	u32 little-endian payload length (1 to maxFrame)
//	u32 little-endian CRC-32C (Castagnoli) of the payload
//	payload
//
// A zero length is invalid on purpose: a file tail of zeros (which a crash
// can leave on some file systems) would otherwise read as valid empty frames.
const (
	frameHeader = 8
	maxFrame    = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn is a frame that is cut short or fails its checksum.
var errTorn = errors.New("torn or corrupt frame")

// beginFrame appends room for a frame header to buf and returns where it
// starts; endFrame fills it in once the payload has been appended.
func beginFrame(buf []byte) ([]byte, int) {
	return append(buf, make([]byte, frameHeader)...), len(buf)
}

func endFrame(buf []byte, start int) []byte {
	payload := buf[start+frameHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf
}

// nextFrame splits the first frame off data, a file read whole, without
// copying: the payload is a slice of data. It returns io.EOF at the end and
// errTorn for a partial or corrupt frame.
func nextFrame(data []byte) (payload, rest []byte, err error) {
	payload, sum, rest, err := splitFrame(data)
	if err != nil {
		return nil, nil, err
	}
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, nil, errTorn
	}
	return payload, rest, nil
}

// splitFrame splits the first frame off data, as nextFrame does, without
// checking its checksum: it returns the checksum the frame holds, for the
// caller to check, later or on another goroutine (see coldLoader.load).
func splitFrame(data []byte) (payload []byte, sum uint32, rest []byte, err error) {
	if len(data) == 0 {
		return nil, 0, nil, io.EOF
	}
	if len(data) < frameHeader {
		return nil, 0, nil, errTorn
	}
	n := binary.LittleEndian.Uint32(data)
	if n == 0 || n > maxFrame || int64(n) > int64(len(data)-frameHeader) {
		return nil, 0, nil, errTorn
	}
	return data[frameHeader : frameHeader+n], binary.LittleEndian.Uint32(data[4:]), data[frameHeader+n:], nil
}

// readFrame reads one frame into buf (reused when big enough). It returns
// io.EOF at a clean end, and errTorn for a partial or corrupt frame. left is
// how many bytes the file has from here: a length past it is torn, and is
// never allocated (a garbage length could otherwise ask for a gigabyte).
func readFrame(r io.Reader, buf []byte, left int64) ([]byte, error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return nil, errTorn
		}
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n == 0 || n > maxFrame || int64(n) > left-frameHeader {
		return nil, errTorn
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, errTorn
		}
		return nil, err
	}
	if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return nil, errTorn
	}
	return buf, nil
}

func putUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
func putVarint(b []byte, v int64) []byte   { return binary.AppendVarint(b, v) }

func putString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// putCnt writes counters as a byte saying which are not zero, then those: a
// row of one event takes three bytes instead of six.
func putCnt(b []byte, c cnt) []byte {
	vals := [6]uint32{c.total, c.s2, c.s3, c.s4, c.s5, c.s429}
	var mask byte
	for i, v := range vals {
		if v != 0 {
			mask |= 1 << i
		}
	}
	b = append(b, mask)
	for _, v := range vals {
		if v != 0 {
			b = binary.AppendUvarint(b, uint64(v))
		}
	}
	return b
}

// decoder reads what the put functions wrote. The first error sticks and
// every later read returns zero values, so callers check err once at the end
// (and before trusting any length they allocate by).
type decoder struct {
	b   []byte
	err error
}

var errCorrupt = errors.New("corrupt record")

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail()
		return 0
	}
	return uint32(v)
}

// count reads a number of items that follow, each at least min bytes long,
// refusing counts the rest of the payload cannot hold, so that a corrupt
// count never makes a huge allocation.
func (d *decoder) count(min int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/max(min, 1)) {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) cnt() cnt {
	mask := d.byte()
	if mask&^0x3f != 0 {
		d.fail()
		return cnt{}
	}
	var vals [6]uint32
	for i := range vals {
		if mask&(1<<i) != 0 {
			vals[i] = d.u32()
		}
	}
	return cnt{vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]}
}

// frameWriter writes frames to a file through a buffer, counting the bytes,
// so that it knows where in the file each frame starts. A frame's payload
// is appended to buf between frame and flush.
type frameWriter struct {
	cw    countingWriter
	w     *bufio.Writer
	buf   []byte
	start int
}

func newFrameWriter(w io.Writer) *frameWriter {
	fw := &frameWriter{cw: countingWriter{w: w}}
	fw.w = bufio.NewWriterSize(&fw.cw, 1<<20)
	return fw
}

// at is where in the file the next frame written starts.
func (fw *frameWriter) at() int64 { return fw.cw.n + int64(fw.w.Buffered()) }

// frame begins a frame of kind.
func (fw *frameWriter) frame(kind byte) {
	fw.buf, fw.start = beginFrame(fw.buf[:0])
	fw.buf = append(fw.buf, kind)
}

// flush ends the frame begun and writes it.
func (fw *frameWriter) flush() error {
	fw.buf = endFrame(fw.buf, fw.start)
	_, err := fw.w.Write(fw.buf)
	return err
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
