/*
 * polytrack._speedups: the metric hot path in C.
 *
 * `Appender` is what `Run.log_metrics` is bound to when this module is built. It writes
 * one 24-byte point record per metric straight into the mapped journal segment, in the
 * format described in polytrack/journal.py:
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
 * format_events: metric points as traceml event lines (polytrack/backends/polyaxon.py).
 *
 * Each point becomes "\n<step>|<YYYY-MM-DD HH:MM:SS.ffffff>+00:00|<repr(value)>", byte for
 * byte what the pure-Python `_event_lines` writes: values through PyOS_double_to_string
 * with float.__repr__'s arguments, the date through gmtime_r (once per day) and, for a
 * year outside 1000..9999, the C library's own "%Y" (as time.strftime writes it), the
 * time of day and the microseconds by hand. The GIL is held throughout: the value
 * formatter allocates with PyMem_Malloc, and no Python code runs, so the arrays cannot
 * change under us.
 */

/* The longest line: "\n", a step (20), "|", a date (a year of at most 12 characters,
   "-MM-DD HH:MM:SS.ffffff"), "+00:00|", a value (at most 24: -2.2250738585072014e-308). */
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
            char *text = PyOS_double_to_string(values[i], 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
            if (text == NULL)
                goto fail;
            size_t len = strlen(text);
            if (len >= sizeof(slot->text)) {  /* cannot happen: 24 at most */
                PyMem_Free(text);
                PyErr_SetString(PyExc_SystemError, "a float repr longer than expected");
                goto fail;
            }
            memcpy(slot->text, text, len);
            slot->len = (uint8_t)len;
            slot->bits = bits;
            PyMem_Free(text);
        }
        memcpy(out, slot->text, slot->len);
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
