/*
 * polytrack._speedups: the metric hot path in C.
 *
 * `Appender` is what `Run.log_metrics` is bound to when this module is built. It writes
 * one 24-byte point record per metric straight into the mapped journal segment, in the
 * format described in polytrack/store/journal.py:
 *
 *     [i64 step][f64 value][f32 seconds since the segment's base][u16 key id][u16 kind]
 *
 * Everything unusual -- a key seen for the first time, a value that is not a float or an
 * int, a full segment, `epoch=`, wrong arguments -- is handed, with the call's original
 * arguments, to the Python slow path, which validates, registers keys, rotates segments
 * and raises the errors users see. Values are converted before any slot is reserved, and
 * the reservation and the stores happen with the GIL held and no Python code in between,
 * so concurrent threads never interleave inside a call. The kind field is stored last,
 * with release order: a record torn by the death of the process reads as empty.
 *
 * `format_events` is the Polyaxon backend's: metric points as event-file lines.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stddef.h>
#include <errno.h>
#include <math.h>  /* isnan, isinf, signbit */
#include <stdint.h>
#include <string.h>
#include <time.h>

#define HEADER_SIZE 64
#define KIND_POINT 0x5450
#define MAX_BATCH 64

typedef struct {
    int64_t step;
    double value;
    float t;
    uint16_t key;
    uint16_t kind;
} Record;

_Static_assert(sizeof(Record) == 24, "a point record is 24 bytes");
_Static_assert(offsetof(Record, kind) == 22, "kind is the last field");

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *key_ids; /* dict: metric name -> key id */
    PyObject *slow;    /* callable(metrics, step=None, epoch=None) */
    Py_buffer view;
    int attached;
    Record *records;
    Py_ssize_t capacity;
    Py_ssize_t used;
    double base;
    long long last_step;
    /* The keys of the last call, held, with their ids: a training loop logs the same
       dict literal every step, whose keys are the same objects, so a pointer compare
       replaces the dict lookup. */
    PyObject *cached_keys[MAX_BATCH];
    uint16_t cached_kids[MAX_BATCH];
    Py_ssize_t cached_n;
} Appender;

static double
monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
forget_keys(Appender *self)
{
    for (Py_ssize_t i = 0; i < self->cached_n; i++)
        Py_CLEAR(self->cached_keys[i]);
    self->cached_n = 0;
}

static void
remember_keys(Appender *self, PyObject **keys, const uint16_t *kids, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        Py_INCREF(keys[i]);  /* before forgetting: a key may be in both */
    forget_keys(self);
    for (Py_ssize_t i = 0; i < n; i++) {
        self->cached_keys[i] = keys[i];
        self->cached_kids[i] = kids[i];
    }
    self->cached_n = n;
}

static PyObject *
appender_slow(Appender *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
}

static PyObject *
appender_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Appender *self = (Appender *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *metrics, *step_obj = Py_None, *epoch_obj = Py_None;
    double values[MAX_BATCH];
    uint16_t kids[MAX_BATCH];
    long long step;

    if (nargs < 1 || nargs > 3 || !self->attached)
        return appender_slow(self, args, nargsf, kwnames);
    metrics = args[0];
    if (nargs > 1)
        step_obj = args[1];
    if (nargs > 2)
        epoch_obj = args[2];
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            if (nargs < 2 && PyUnicode_CompareWithASCIIString(name, "step") == 0)
                step_obj = args[nargs + i];
            else if (nargs < 3 && PyUnicode_CompareWithASCIIString(name, "epoch") == 0)
                epoch_obj = args[nargs + i];
            else
                return appender_slow(self, args, nargsf, kwnames);
        }
    }
    if (epoch_obj != Py_None || !PyDict_CheckExact(metrics))
        return appender_slow(self, args, nargsf, kwnames);

    if (step_obj == Py_None) {
        step = self->last_step + 1;
    }
    else if (PyLong_CheckExact(step_obj)) {
        int overflow;
        step = PyLong_AsLongLongAndOverflow(step_obj, &overflow);
        if (overflow || (step == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return appender_slow(self, args, nargsf, kwnames);
        }
    }
    else {
        return appender_slow(self, args, nargsf, kwnames);
    }

    Py_ssize_t n = PyDict_GET_SIZE(metrics);
    if (n > MAX_BATCH)
        return appender_slow(self, args, nargsf, kwnames);

    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *value, *keys[MAX_BATCH];
    int cache_hit = (n == self->cached_n);
    while (PyDict_Next(metrics, &pos, &key, &value)) {
        if (i >= n)  /* the dict grew under a __float__: let Python sort it out */
            return appender_slow(self, args, nargsf, kwnames);
        keys[i] = key;
        if (cache_hit && key == self->cached_keys[i]) {
            kids[i] = self->cached_kids[i];
        }
        else {
            cache_hit = 0;
            PyObject *kid = PyDict_GetItemWithError(self->key_ids, key);
            if (kid == NULL) {
                PyErr_Clear();
                return appender_slow(self, args, nargsf, kwnames);
            }
            kids[i] = (uint16_t)PyLong_AsLong(kid);
        }
        if (PyFloat_Check(value)) {
            values[i] = PyFloat_AS_DOUBLE(value);
        }
        else if (PyLong_Check(value)) {
            values[i] = PyLong_AsDouble(value);
            if (values[i] == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                return appender_slow(self, args, nargsf, kwnames);
            }
        }
        else {
            return appender_slow(self, args, nargsf, kwnames);
        }
        i++;
    }
    if (i != n || !self->attached || self->used + n > self->capacity)
        return appender_slow(self, args, nargsf, kwnames);

    float t = (float)(monotonic_seconds() - self->base);
    Record *record = self->records + self->used;
    self->used += n;
    for (i = 0; i < n; i++, record++) {
        record->step = step;
        record->value = values[i];
        record->t = t > 0 ? t : 0.0f;
        record->key = kids[i];
        __atomic_store_n(&record->kind, (uint16_t)KIND_POINT, __ATOMIC_RELEASE);
    }
    self->last_step = step;
    if (!cache_hit)
        remember_keys(self, keys, kids, n);
    Py_RETURN_NONE;
}

static int
appender_init(Appender *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"key_ids", "slow", NULL};
    PyObject *key_ids, *slow;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O:Appender", kwlist, &PyDict_Type,
                                     &key_ids, &slow))
        return -1;
    if (!PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "slow must be callable");
        return -1;
    }
    Py_XSETREF(self->key_ids, Py_NewRef(key_ids));
    Py_XSETREF(self->slow, Py_NewRef(slow));
    self->last_step = -1;
    self->vectorcall = appender_vectorcall;
    return 0;
}

static void
appender_release(Appender *self)
{
    if (self->attached) {
        self->attached = 0;
        self->records = NULL;
        PyBuffer_Release(&self->view);
    }
}

static int
appender_traverse(Appender *self, visitproc visit, void *arg)
{
    Py_VISIT(self->key_ids);
    Py_VISIT(self->slow);
    for (Py_ssize_t i = 0; i < self->cached_n; i++)
        Py_VISIT(self->cached_keys[i]);
    return 0;
}

static int
appender_clear(Appender *self)
{
    appender_release(self);
    forget_keys(self);
    Py_CLEAR(self->key_ids);
    Py_CLEAR(self->slow);
    return 0;
}

static void
appender_dealloc(Appender *self)
{
    PyObject_GC_UnTrack(self);
    appender_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(attach_doc,
"attach(buffer, capacity, age)\n--\n\n"
"Write into `buffer` (a writable mapped segment) from its first slot on; `capacity`\n"
"records fit. Its times count from its start, `age` seconds ago. (An age rather than a\n"
"time.monotonic() value: that clock need not be the one C reads, on macOS say.)");

static PyObject *
appender_attach(Appender *self, PyObject *args)
{
    PyObject *buffer;
    Py_ssize_t capacity;
    double age;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "Ond:attach", &buffer, &capacity, &age))
        return NULL;
    if (PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (capacity < 0 || HEADER_SIZE + capacity * (Py_ssize_t)sizeof(Record) > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "capacity does not fit in the buffer");
        return NULL;
    }
    appender_release(self);
    self->view = view;
    self->attached = 1;
    self->records = (Record *)((char *)view.buf + HEADER_SIZE);
    self->capacity = capacity;
    self->used = 0;
    self->base = monotonic_seconds() - age;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(detach_doc,
"detach() -> int\n--\n\n"
"Stop writing into the attached buffer and release it; return the slots used in it.");

static PyObject *
appender_detach(Appender *self, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t used = self->attached ? self->used : 0;
    appender_release(self);
    return PyLong_FromSsize_t(used);
}

PyDoc_STRVAR(write_doc,
"write(key_id, step, value) -> bool\n--\n\n"
"Write one validated point now; False when the attached segment is full (or none is).");

static PyObject *
appender_write(Appender *self, PyObject *args)
{
    int key_id;
    long long step;
    double value;
    if (!PyArg_ParseTuple(args, "iLd:write", &key_id, &step, &value))
        return NULL;
    if (!self->attached || self->used >= self->capacity)
        Py_RETURN_FALSE;
    float t = (float)(monotonic_seconds() - self->base);
    Record *record = self->records + self->used++;
    record->step = step;
    record->value = value;
    record->t = t > 0 ? t : 0.0f;
    record->key = (uint16_t)key_id;
    __atomic_store_n(&record->kind, (uint16_t)KIND_POINT, __ATOMIC_RELEASE);
    Py_RETURN_TRUE;
}

static PyMethodDef appender_methods[] = {
    {"attach", (PyCFunction)appender_attach, METH_VARARGS, attach_doc},
    {"detach", (PyCFunction)appender_detach, METH_NOARGS, detach_doc},
    {"write", (PyCFunction)appender_write, METH_VARARGS, write_doc},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef appender_members[] = {
    {"last_step", T_LONGLONG, offsetof(Appender, last_step), 0,
     "The last step logged; an omitted step is one more."},
    {"used", T_PYSSIZET, offsetof(Appender, used), READONLY,
     "Slots used in the attached segment."},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Appender, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject AppenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "polytrack._speedups.Appender",
    .tp_doc = PyDoc_STR("Writes metric points into a mapped journal segment."),
    .tp_basicsize = sizeof(Appender),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)appender_init,
    .tp_dealloc = (destructor)appender_dealloc,
    .tp_traverse = (traverseproc)appender_traverse,
    .tp_clear = (inquiry)appender_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Appender, vectorcall),
    .tp_methods = appender_methods,
    .tp_members = appender_members,
};

/*
 * format_events: metric points as traceml event lines (see sync/backends/polyaxon_events.py).
 *
 * Each point becomes "\n<step>|<YYYY-MM-DD HH:MM:SS.ffffff>+00:00|<repr(value)>", byte for
 * byte what the pure-Python `event_lines` (polytrack.sync.backends.polyaxon_events) writes:
 * values as float.__repr__ writes them (format_repr below, where Grisu3 vouches for its
 * digits, else PyOS_double_to_string with repr's arguments; a 256-slot cache keeps
 * repeated values from being formatted again), the date through gmtime_r (once per day)
 * and, for a year outside 1000..9999, the C library's own "%Y" (as time.strftime writes
 * it), the time of day and the microseconds by hand. The GIL is held throughout: the dtoa
 * fallback allocates with PyMem_Malloc, and no Python code runs, so the arrays cannot
 * change under us.
 */

/* The longest line: "\n", a step (20), "|", a date (a year of at most 12 characters,
   "-MM-DD HH:MM:SS.ffffff"), "+00:00|", a value (at most 24: -2.2250738585072014e-308),
   written as all 31 bytes of its cache slot. */
#define EVENT_LINE_MAX 128
#define VALUE_CACHE 256

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static inline char *
put2(char *out, unsigned v)
{
    memcpy(out, digit_pairs + 2 * v, 2);
    return out + 2;
}

static char *
put_int64(char *out, int64_t value)
{
    char tmp[24];
    char *end = tmp + sizeof(tmp), *p = end;
    uint64_t u = (uint64_t)value;
    if (value < 0) {
        *out++ = '-';
        u = 0 - u;  /* INT64_MIN too: unsigned arithmetic wraps to its magnitude */
    }
    while (u >= 100) {
        unsigned pair = (unsigned)(u % 100);
        u /= 100;
        p -= 2;
        memcpy(p, digit_pairs + 2 * pair, 2);
    }
    if (u >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * u, 2);
    }
    else {
        *--p = (char)('0' + u);
    }
    memcpy(out, p, (size_t)(end - p));
    return out + (end - p);
}

/*
 * A double's repr without dtoa: Grisu3 (Florian Loitsch, "Printing Floating-Point Numbers
 * Quickly and Accurately with Integers", PLDI 2010), as in Google's double-conversion
 * (fast-dtoa.cc), then laid out as CPython's repr lays out dtoa's digits.
 *
 * float.__repr__ is David Gay's dtoa in mode 0 -- the shortest digits that read back as
 * the same double, the nearest of them to it -- which works in big integers: 0.5 to 2 us a
 * value. Grisu3 does it in 64-bit integers: it scales the value and its rounding interval
 * by a cached power of ten and cuts digits until the rest lies inside the interval. Its
 * approximations are off by a unit or two, so near the interval's ends it cannot tell
 * whether a digit string is in or out, or which of two is nearer; it then says so (about
 * one double in two hundred) and we fall back to PyOS_double_to_string. Whenever it
 * answers, its digits are dtoa's: the shortest string (nothing shorter lies even in the
 * widened interval) and the nearest one.
 */

/* 10**k = f * 2**e, f rounded to 64 bits, for k = -348, -340, ..., 340; generated with
 *
 *     from fractions import Fraction
 *     for k in range(-348, 341, 8):
 *         x, e = Fraction(10) ** k, 0
 *         while x >= Fraction(2) ** (e + 64): e += 1
 *         while x < Fraction(2) ** (e + 63): e -= 1
 *         print(f"{{{round(x / Fraction(2) ** e):#018x}u, {e}}},")
 */
static const struct {
    uint64_t f;
    int e;
} cached_powers[] = {
    {0xfa8fd5a0081c0288u, -1220}, {0xbaaee17fa23ebf76u, -1193}, {0x8b16fb203055ac76u, -1166},
    {0xcf42894a5dce35eau, -1140}, {0x9a6bb0aa55653b2du, -1113}, {0xe61acf033d1a45dfu, -1087},
    {0xab70fe17c79ac6cau, -1060}, {0xff77b1fcbebcdc4fu, -1034}, {0xbe5691ef416bd60cu, -1007},
    {0x8dd01fad907ffc3cu, -980}, {0xd3515c2831559a83u, -954}, {0x9d71ac8fada6c9b5u, -927},
    {0xea9c227723ee8bcbu, -901}, {0xaecc49914078536du, -874}, {0x823c12795db6ce57u, -847},
    {0xc21094364dfb5637u, -821}, {0x9096ea6f3848984fu, -794}, {0xd77485cb25823ac7u, -768},
    {0xa086cfcd97bf97f4u, -741}, {0xef340a98172aace5u, -715}, {0xb23867fb2a35b28eu, -688},
    {0x84c8d4dfd2c63f3bu, -661}, {0xc5dd44271ad3cdbau, -635}, {0x936b9fcebb25c996u, -608},
    {0xdbac6c247d62a584u, -582}, {0xa3ab66580d5fdaf6u, -555}, {0xf3e2f893dec3f126u, -529},
    {0xb5b5ada8aaff80b8u, -502}, {0x87625f056c7c4a8bu, -475}, {0xc9bcff6034c13053u, -449},
    {0x964e858c91ba2655u, -422}, {0xdff9772470297ebdu, -396}, {0xa6dfbd9fb8e5b88fu, -369},
    {0xf8a95fcf88747d94u, -343}, {0xb94470938fa89bcfu, -316}, {0x8a08f0f8bf0f156bu, -289},
    {0xcdb02555653131b6u, -263}, {0x993fe2c6d07b7facu, -236}, {0xe45c10c42a2b3b06u, -210},
    {0xaa242499697392d3u, -183}, {0xfd87b5f28300ca0eu, -157}, {0xbce5086492111aebu, -130},
    {0x8cbccc096f5088ccu, -103}, {0xd1b71758e219652cu, -77}, {0x9c40000000000000u, -50},
    {0xe8d4a51000000000u, -24}, {0xad78ebc5ac620000u, 3}, {0x813f3978f8940984u, 30},
    {0xc097ce7bc90715b3u, 56}, {0x8f7e32ce7bea5c70u, 83}, {0xd5d238a4abe98068u, 109},
    {0x9f4f2726179a2245u, 136}, {0xed63a231d4c4fb27u, 162}, {0xb0de65388cc8ada8u, 189},
    {0x83c7088e1aab65dbu, 216}, {0xc45d1df942711d9au, 242}, {0x924d692ca61be758u, 269},
    {0xda01ee641a708deau, 295}, {0xa26da3999aef774au, 322}, {0xf209787bb47d6b85u, 348},
    {0xb454e4a179dd1877u, 375}, {0x865b86925b9bc5c2u, 402}, {0xc83553c5c8965d3du, 428},
    {0x952ab45cfa97a0b3u, 455}, {0xde469fbd99a05fe3u, 481}, {0xa59bc234db398c25u, 508},
    {0xf6c69a72a3989f5cu, 534}, {0xb7dcbf5354e9beceu, 561}, {0x88fcf317f22241e2u, 588},
    {0xcc20ce9bd35c78a5u, 614}, {0x98165af37b2153dfu, 641}, {0xe2a0b5dc971f303au, 667},
    {0xa8d9d1535ce3b396u, 694}, {0xfb9b7cd9a4a7443cu, 720}, {0xbb764c4ca7a44410u, 747},
    {0x8bab8eefb6409c1au, 774}, {0xd01fef10a657842cu, 800}, {0x9b10a4e5e9913129u, 827},
    {0xe7109bfba19c0c9du, 853}, {0xac2820d9623bf429u, 880}, {0x80444b5e7aa7cf85u, 907},
    {0xbf21e44003acdd2du, 933}, {0x8e679c2f5e44ff8fu, 960}, {0xd433179d9c8cb841u, 986},
    {0x9e19db92b4e31ba9u, 1013}, {0xeb96bf6ebadf77d9u, 1039}, {0xaf87023b9bf0ee6bu, 1066},
};
#define CACHED_POWERS_MIN_K (-348)
#define CACHED_POWERS_STEP 8

/* The scaled value's binary exponent is brought into [ALPHA, GAMMA]: its integral part
   then fits 32 bits and its fraction leaves room for the digits. */
#define GRISU_ALPHA (-60)
#define GRISU_GAMMA (-32)

typedef struct {
    uint64_t f;
    int e;
} DiyFp;  /* f * 2**e */

/* x * y rounded to the upper 64 bits of the product (half up). */
static inline DiyFp
diyfp_times(DiyFp x, DiyFp y)
{
    const uint64_t m32 = 0xFFFFFFFFu;
    uint64_t a = x.f >> 32, b = x.f & m32, c = y.f >> 32, d = y.f & m32;
    uint64_t ac = a * c, bc = b * c, ad = a * d, bd = b * d;
    uint64_t mid = (bd >> 32) + (ad & m32) + (bc & m32) + (1u << 31);
    DiyFp r = {ac + (ad >> 32) + (bc >> 32) + (mid >> 32), x.e + y.e + 64};
    return r;
}

static inline DiyFp
diyfp_normalize(DiyFp x)
{
    while (!(x.f & 0xFFC0000000000000ull)) {
        x.f <<= 10;
        x.e -= 10;
    }
    while (!(x.f & 0x8000000000000000ull)) {
        x.f <<= 1;
        x.e -= 1;
    }
    return x;
}

/* Brings the last digit of the candidate (too_high - rest) as close to w as the interval
   allows, and says whether the result is provably the nearest and inside the interval. */
static int
grisu_round_weed(char *buffer, int length, uint64_t distance_too_high_w,
                 uint64_t unsafe_interval, uint64_t rest, uint64_t ten_kappa, uint64_t unit)
{
    uint64_t small_distance = distance_too_high_w - unit;
    uint64_t big_distance = distance_too_high_w + unit;
    while (rest < small_distance && unsafe_interval - rest >= ten_kappa
           && (rest + ten_kappa < small_distance
               || small_distance - rest >= rest + ten_kappa - small_distance)) {
        buffer[length - 1]--;
        rest += ten_kappa;
    }
    if (rest < big_distance && unsafe_interval - rest >= ten_kappa
        && (rest + ten_kappa < big_distance
            || big_distance - rest > rest + ten_kappa - big_distance))
        return 0;  /* the next lower candidate may be nearer: cannot tell */
    return 2 * unit <= rest && rest <= unsafe_interval - 4 * unit;
}

static const uint32_t pow10_u32[10] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
};

/* The shortest digits in (low, high), scaled, nearest to w; 0 where unsure. */
static int
grisu_digit_gen(DiyFp low, DiyFp w, DiyFp high, char *buffer, int *length, int *kappa)
{
    uint64_t unit = 1;
    uint64_t too_low = low.f - unit, too_high = high.f + unit;
    uint64_t unsafe_interval = too_high - too_low;
    int shift = -w.e;
    uint64_t one = (uint64_t)1 << shift;
    uint32_t integrals = (uint32_t)(too_high >> shift);
    uint64_t fractionals = too_high & (one - 1);
    /* The integral part's digits, all at once (no division by a variable), then one by
       one, each taken off the rest, until the rest is inside the interval. */
    char whole[10];
    int k = 1;
    while (k < 10 && integrals >= pow10_u32[k])
        k++;
    for (int j = k; j > 0; j--, integrals /= 10)
        whole[j - 1] = (char)('0' + integrals % 10);
    uint64_t rest = too_high;
    *length = 0;
    for (int j = 0; j < k; j++) {
        uint64_t ten_kappa = (uint64_t)pow10_u32[k - 1 - j] << shift;
        buffer[(*length)++] = whole[j];
        rest -= (uint64_t)(whole[j] - '0') * ten_kappa;
        if (rest < unsafe_interval) {
            *kappa = k - 1 - j;
            return grisu_round_weed(buffer, *length, too_high - w.f, unsafe_interval, rest,
                                    ten_kappa, unit);
        }
    }
    k = 0;
    for (;;) {
        if (*length >= 17)  /* cannot happen: 17 digits always tell doubles apart */
            return 0;
        fractionals *= 10;
        unit *= 10;
        unsafe_interval *= 10;
        buffer[(*length)++] = (char)('0' + (fractionals >> shift));
        fractionals &= one - 1;
        k--;
        if (fractionals < unsafe_interval) {
            *kappa = k;
            return grisu_round_weed(buffer, *length, (too_high - w.f) * unit, unsafe_interval,
                                    fractionals, one, unit);
        }
    }
}

/* The shortest digits of a finite v > 0 and the position of the decimal point
   (v = 0.digits * 10**decpt); 0 where Grisu3 cannot vouch for them. */
static int
grisu3(double v, char *digits, int *length, int *decpt)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    uint64_t fraction = bits & 0x000FFFFFFFFFFFFFull;
    int biased = (int)(bits >> 52) & 0x7FF;
    DiyFp x = biased ? (DiyFp){fraction | 0x0010000000000000ull, biased - 1075}
                     : (DiyFp){fraction, -1074};
    /* The rounding interval's ends, halfway to the neighbours; the lower one is nearer
       where the significand is a power of two (and the exponent not the least). */
    DiyFp plus = diyfp_normalize((DiyFp){(x.f << 1) + 1, x.e - 1});
    DiyFp minus = (fraction == 0 && biased > 1) ? (DiyFp){(x.f << 2) - 1, x.e - 2}
                                                : (DiyFp){(x.f << 1) - 1, x.e - 1};
    minus.f <<= minus.e - plus.e;
    minus.e = plus.e;
    DiyFp w = diyfp_normalize(x);

    /* The cached power of ten that brings w's exponent into [ALPHA, GAMMA], as
       double-conversion picks it: the least tabled 10**mk above 2**e2, e2 = ALPHA - 1 - w.e.
       floor(e2 * log10(2)) is (e2 * 78913) >> 18 for |e2| < 1650, offset to shift a
       non-negative number. */
    int e2 = GRISU_ALPHA - 1 - w.e;
    int log10_floor = ((e2 * 78913 + 400 * 262144) >> 18) - 400;
    int index = (-CACHED_POWERS_MIN_K + log10_floor) / CACHED_POWERS_STEP + 1;
    DiyFp power = {cached_powers[index].f, cached_powers[index].e};
    int mk = CACHED_POWERS_MIN_K + index * CACHED_POWERS_STEP;

    DiyFp sw = diyfp_times(w, power);
    if (sw.e < GRISU_ALPHA || sw.e > GRISU_GAMMA)  /* cannot happen: the table covers it */
        return 0;
    int kappa;
    if (!grisu_digit_gen(diyfp_times(minus, power), sw, diyfp_times(plus, power), digits,
                         length, &kappa))
        return 0;
    *decpt = *length + kappa - mk;
    return 1;
}

/* repr(v) into out (24 characters at most, but out must have room for 31: digits are
   copied 16 or 17 at a time, a fixed size the compiler copies without a call); its
   length, or -1 where Grisu3 gave up. Laid out as CPython's format_float_short does for
   repr: the digits in fixed notation when -4 < decpt <= 16, with ".0" after an integer,
   else d.ddde[+-]XX. */
static int
format_repr(double v, char *out)
{
    char *p = out;
    if (isnan(v)) {
        memcpy(out, "nan", 3);
        return 3;
    }
    if (signbit(v)) {
        *p++ = '-';
        v = -v;
    }
    if (isinf(v)) {
        memcpy(p, "inf", 3);
        return (int)(p - out) + 3;
    }
    if (v == 0.0) {
        memcpy(p, "0.0", 3);
        return (int)(p - out) + 3;
    }
    char digits[20];
    int n, decpt;
    if (!grisu3(v, digits, &n, &decpt))
        return -1;
    if (decpt <= -4 || decpt > 16) {
        int exponent = decpt - 1;
        *p++ = digits[0];
        if (n > 1) {
            *p++ = '.';
            memcpy(p, digits + 1, 16);
            p += n - 1;
        }
        *p++ = 'e';
        if (exponent < 0) {
            *p++ = '-';
            exponent = -exponent;
        }
        else {
            *p++ = '+';
        }
        if (exponent >= 100) {
            *p++ = (char)('0' + exponent / 100);
            exponent %= 100;
        }
        p = put2(p, (unsigned)exponent);
    }
    else if (decpt <= 0) {
        memcpy(p, "0.000", 5);
        p += 2 - decpt;
        memcpy(p, digits, 17);
        p += n;
    }
    else if (decpt >= n) {
        memcpy(p, digits, 17);
        p += n;
        memset(p, '0', (size_t)(decpt - n));
        p += decpt - n;
        memcpy(p, ".0", 2);
        p += 2;
    }
    else {
        memcpy(p, digits, 16);
        p += decpt;
        *p++ = '.';
        memcpy(p, digits + decpt, 17 - (size_t)decpt);
        p += n - decpt;
    }
    return (int)(p - out);
}

typedef struct {
    uint64_t bits;
    uint8_t len;  /* 0: empty (a repr is never empty) */
    char text[31];
} ValueText;

static int
get_column(PyObject *obj, const char *name, char kind, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError) || PyErr_ExceptionMatches(PyExc_TypeError)
            || PyErr_ExceptionMatches(PyExc_ValueError)) {  /* numpy: "not C-contiguous" */
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "%s must be a C-contiguous buffer (a numpy array), not %.100s", name,
                         Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    const char *format = view->format != NULL ? view->format : "B";
    if (*format == '@' || *format == '=' || *format == '<')
        format++;
    int ok = view->ndim == 1 && view->itemsize == 8 && format[0] != '\0' && format[1] == '\0'
        && (kind == 'i' ? (format[0] == 'q' || format[0] == 'l') : format[0] == 'd');
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s must be a one-dimensional array of %s, got format "
                     "%.20s with %zd-byte items in %d dimensions", name,
                     kind == 'i' ? "int64" : "float64", view->format ? view->format : "B",
                     view->itemsize, view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

typedef struct {
    int64_t second;  /* the whole second `text` is for */
    int64_t day;     /* the day `date` is for */
    char date[32];   /* "YYYY-MM-DD " */
    size_t date_len;
    char text[48];   /* "YYYY-MM-DD HH:MM:SS." */
    size_t len;
    int valid;
} Clock;

static int
clock_set(Clock *clock, int64_t second)
{
    int64_t day = second / 86400, rest = second % 86400;
    if (rest < 0) {
        rest += 86400;
        day -= 1;
    }
    if (!clock->valid || day != clock->day) {
        int64_t start = day * 86400;
        time_t t = (time_t)start;
        struct tm tm;
        if ((int64_t)t != start) {
            PyErr_SetString(PyExc_OverflowError, "timestamp out of range for platform time_t");
            return -1;
        }
        errno = 0;
        if (gmtime_r(&t, &tm) == NULL) {
            if (errno == 0)
                errno = EINVAL;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        char *p = clock->date;
        long year = (long)tm.tm_year + 1900;
        if (year >= 1000 && year <= 9999) {
            p = put2(p, (unsigned)(year / 100));
            p = put2(p, (unsigned)(year % 100));
        }
        else {
            /* What time.strftime("%Y") writes for such years is the C library's to say. */
            size_t n = strftime(p, 20, "%Y", &tm);
            if (n == 0) {
                PyErr_SetString(PyExc_ValueError, "the year cannot be formatted");
                return -1;
            }
            p += n;
        }
        *p++ = '-';
        p = put2(p, (unsigned)(tm.tm_mon + 1));
        *p++ = '-';
        p = put2(p, (unsigned)tm.tm_mday);
        *p++ = ' ';
        clock->date_len = (size_t)(p - clock->date);
        clock->day = day;
    }
    char *p = clock->text;
    memcpy(p, clock->date, clock->date_len);
    p += clock->date_len;
    unsigned r = (unsigned)rest;
    p = put2(p, r / 3600);
    *p++ = ':';
    p = put2(p, r / 60 % 60);
    *p++ = ':';
    p = put2(p, r % 60);
    *p++ = '.';
    clock->len = (size_t)(p - clock->text);
    clock->second = second;
    clock->valid = 1;
    return 0;
}

PyDoc_STRVAR(format_events_doc,
"format_events(steps, micros, values) -> bytes\n--\n\n"
"The points as traceml event lines, \"\\n<step>|<YYYY-MM-DD HH:MM:SS.ffffff>+00:00|<value>\"\n"
"each: `steps` int64, `micros` int64 microseconds since the epoch (UTC), `values` float64\n"
"(written as repr writes them); one-dimensional contiguous arrays of one length.");

static PyObject *
format_events(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *steps_obj, *micros_obj, *values_obj, *result = NULL;
    Py_buffer steps_view, micros_view, values_view;
    ValueText *cache = NULL;
    if (!PyArg_ParseTuple(args, "OOO:format_events", &steps_obj, &micros_obj, &values_obj))
        return NULL;
    if (get_column(steps_obj, "steps", 'i', &steps_view) < 0)
        return NULL;
    if (get_column(micros_obj, "micros", 'i', &micros_view) < 0) {
        PyBuffer_Release(&steps_view);
        return NULL;
    }
    if (get_column(values_obj, "values", 'f', &values_view) < 0) {
        PyBuffer_Release(&micros_view);
        PyBuffer_Release(&steps_view);
        return NULL;
    }
    Py_ssize_t n = steps_view.len / 8;
    if (micros_view.len / 8 != n || values_view.len / 8 != n) {
        PyErr_Format(PyExc_ValueError,
                     "steps, micros and values must have one length, got %zd, %zd and %zd", n,
                     micros_view.len / 8, values_view.len / 8);
        goto done;
    }
    const int64_t *steps = steps_view.buf, *micros = micros_view.buf;
    const double *values = values_view.buf;

    /* About 55 bytes a line for usual points; grown by half as needed, trimmed at the end. */
    Py_ssize_t capacity = n * 56 + EVENT_LINE_MAX;
    result = PyBytes_FromStringAndSize(NULL, capacity);
    if (result == NULL)
        goto done;
    cache = PyMem_Calloc(VALUE_CACHE, sizeof(ValueText));
    if (cache == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    char *out = PyBytes_AS_STRING(result), *end = out + capacity;
    Clock clock = {.valid = 0};
    for (Py_ssize_t i = 0; i < n; i++) {
        if (end - out < EVENT_LINE_MAX) {
            Py_ssize_t used = out - PyBytes_AS_STRING(result);
            capacity += capacity / 2 + EVENT_LINE_MAX;
            if (_PyBytes_Resize(&result, capacity) < 0)
                goto done;  /* result is NULL now */
            out = PyBytes_AS_STRING(result) + used;
            end = PyBytes_AS_STRING(result) + capacity;
        }
        *out++ = '\n';
        out = put_int64(out, steps[i]);
        *out++ = '|';

        int64_t micro = micros[i], second = micro / 1000000, fraction = micro % 1000000;
        if (fraction < 0) {
            fraction += 1000000;
            second -= 1;
        }
        if (!clock.valid || second != clock.second) {
            if (clock_set(&clock, second) < 0)
                goto fail;
        }
        memcpy(out, clock.text, clock.len);
        out += clock.len;
        unsigned f = (unsigned)fraction;
        out = put2(out, f / 10000);
        out = put2(out, f / 100 % 100);
        out = put2(out, f % 100);
        memcpy(out, "+00:00|", 7);
        out += 7;

        uint64_t bits;
        memcpy(&bits, &values[i], 8);
        ValueText *slot = &cache[(bits * 0x9E3779B97F4A7C15ull) >> 56];
        if (slot->len == 0 || slot->bits != bits) {
            int len = format_repr(values[i], slot->text);
            if (len < 0) {  /* Grisu3 gave up: dtoa */
                char *text = PyOS_double_to_string(values[i], 'r', 0, Py_DTSF_ADD_DOT_0,
                                                   NULL);
                if (text == NULL)
                    goto fail;
                size_t dtoa_len = strlen(text);
                if (dtoa_len >= sizeof(slot->text)) {  /* cannot happen: 24 at most */
                    PyMem_Free(text);
                    PyErr_SetString(PyExc_SystemError, "a float repr longer than expected");
                    goto fail;
                }
                memcpy(slot->text, text, dtoa_len);
                len = (int)dtoa_len;
                PyMem_Free(text);
            }
            slot->len = (uint8_t)len;
            slot->bits = bits;
        }
        memcpy(out, slot->text, sizeof(slot->text));  /* a fixed size: no call */
        out += slot->len;
    }
    if (_PyBytes_Resize(&result, out - PyBytes_AS_STRING(result)) < 0)
        goto done;
    goto done;
fail:
    Py_CLEAR(result);
done:
    PyMem_Free(cache);
    PyBuffer_Release(&values_view);
    PyBuffer_Release(&micros_view);
    PyBuffer_Release(&steps_view);
    return result;
}

static PyMethodDef speedups_functions[] = {
    {"format_events", (PyCFunction)format_events, METH_VARARGS, format_events_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "polytrack._speedups",
    .m_doc = "The metric hot path in C; polytrack works without it, more slowly.",
    .m_size = -1,
    .m_methods = speedups_functions,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        /* The journal is little-endian; the pure-Python path packs it explicitly. */
        PyErr_SetString(PyExc_ImportError, "polytrack._speedups needs a little-endian CPU");
        return NULL;
    }
    if (PyType_Ready(&AppenderType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Appender", (PyObject *)&AppenderType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
