/* A C extension for tests/remote/check_native.py: blocker.outer(fd) calls
 * blocker_middle, which calls blocker_inner, which blocks in read(2) on fd
 * (the GIL released). Built by the test with gcc for each interpreter. */
#include <Python.h>
#include <unistd.h>

__attribute__((noinline)) int blocker_inner(int fd)
{
    char c;
    ssize_t n = read(fd, &c, 1);
    __asm__ volatile("" ::: "memory"); /* no tail call */
    return (int)n;
}

__attribute__((noinline)) int blocker_middle(int fd)
{
    int r = blocker_inner(fd);
    __asm__ volatile("" ::: "memory");
    return r + 1;
}

static PyObject *blocker_outer(PyObject *self, PyObject *args)
{
    int fd, r;
    (void)self;
    if (!PyArg_ParseTuple(args, "i", &fd))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = blocker_middle(fd);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(r);
}

static PyMethodDef methods[] = {
    {"outer", blocker_outer, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

#if PY_MAJOR_VERSION >= 3
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "blocker", NULL, -1, methods};
PyMODINIT_FUNC PyInit_blocker(void) { return PyModule_Create(&module); }
#else
PyMODINIT_FUNC initblocker(void) { Py_InitModule("blocker", methods); }
#endif
