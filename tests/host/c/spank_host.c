/*
 * spank_host: a stand-in for the Slurm processes that load SPANK plugins, for tests.
 *
 * It provides the spank_* and slurm_* functions a plugin imports (spank_get_item is
 * variadic, hence C), dlopens the plugin with RTLD_NOW (as Slurm's BIND_NOW build does) and
 * runs the steps given on the command line, in order, in the chosen context. Everything the
 * plugin does is printed on stdout, one event per line, for the Rust driver to parse:
 *   register NAME has_arg=N arginfo=A usage=U     rc HOOK N     missing HOOK
 *   log LEVEL MESSAGE      setenv NAME=VALUE      unsetenv NAME  control_setenv NAME=VALUE
 *   env NAME=VALUE (final job environment, after the last step)
 *   describe name=N type=T version=0xV / exported SYMBOL
 *
 * Usage: spank_host PLUGIN.so [--context CTX] [--arg WORD]... [--item NAME=VALUE]...
 *        [--null-item NAME]... [--env NAME=VALUE]... [--job FIELD=VALUE]... STEP...
 * --job sets what the fake slurm_load_job returns (fields: time_limit (minutes or
 * "infinite"), tres_per_node, nodes, gres_detail (this host's entry), fail=1); without any
 * --job, slurm_load_job fails as if no controller answered. Each call prints "rpc slurm_load_job".
 * STEP: --call HOOK | --option NAME[=VALUE] | --describe | --task COMMAND
 *   --task runs one task the way slurmstepd does: fork; in the child task_init_privileged and
 *   task_init, then exec /bin/sh -c COMMAND with the job environment; in the parent
 *   task_post_fork, wait, set the task_exit_status item to the wait status, task_exit.
 *   With SPANK_HOST_TASK_FD=N in the host's environment the task's stdout is descriptor N
 *   (the host's own lines stay on stdout).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <slurm/spank.h>
#include <slurm/slurm.h>

/* Where the host's event lines go: stdout, or in a task child its saved copy. */
static FILE *events;

#define MAX_ENTRIES 512

struct spank_handle {
	int magic;
};

static struct spank_handle the_handle = { 0x5350 };
static spank_context_t context = S_CTX_REMOTE;

static char *job_env[MAX_ENTRIES + 1];
static int job_env_count;

struct item_value {
	const char *name;
	int item;
	int set;
	int is_null;
	char *text;
};

static struct item_value items[] = {
	{ "uid", S_JOB_UID },
	{ "gid", S_JOB_GID },
	{ "job_id", S_JOB_ID },
	{ "step_id", S_JOB_STEPID },
	{ "nnodes", S_JOB_NNODES },
	{ "node_id", S_JOB_NODEID },
	{ "local_task_count", S_JOB_LOCAL_TASK_COUNT },
	{ "total_task_count", S_JOB_TOTAL_TASK_COUNT },
	{ "ncpus", S_JOB_NCPUS },
	{ "argv", S_JOB_ARGV },
	{ "task_id", S_TASK_ID },
	{ "task_global_id", S_TASK_GLOBAL_ID },
	{ "task_exit_status", S_TASK_EXIT_STATUS },
	{ "task_pid", S_TASK_PID },
	{ "slurm_version", S_SLURM_VERSION },
	{ "alloc_mem", S_JOB_ALLOC_MEM },
	{ "restart_count", S_SLURM_RESTART_COUNT },
	{ "array_job_id", S_JOB_ARRAY_ID },
	{ "array_task_id", S_JOB_ARRAY_TASK_ID },
	{ NULL, 0 },
};

struct registered_option {
	struct spank_option opt;
	char *value; /* set by --option, read by spank_option_getopt */
	int given;
};

static struct registered_option options[64];
static int option_count;

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("spank_host: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

/*
 * strdup for strings that live as long as the process (arguments, item texts handed to the
 * plugin, which Slurm owns too). Every copy stays reachable from `kept`, so valgrind
 * (tests/valgrind-host.sh) reports no leak of the host and any leak it reports is the plugin's.
 */
static char *volatile kept[4096]; /* volatile: never optimized away as write-only */
static int kept_count;

static char *keep_strdup(const char *s)
{
	char *copy = strdup(s);
	if (!copy)
		fail("out of memory");
	if (kept_count < (int) (sizeof(kept) / sizeof(kept[0])))
		kept[kept_count++] = copy;
	return copy;
}

/* Prints text on one line: newlines and backslashes are escaped. */
static void print_escaped(const char *text)
{
	for (const char *p = text ? text : "(null)"; *p; p++) {
		if (*p == '\n')
			fputs("\\n", events);
		else if (*p == '\\')
			fputs("\\\\", events);
		else
			fputc(*p, events);
	}
}

static struct item_value *find_item_by_name(const char *name)
{
	for (struct item_value *it = items; it->name; it++)
		if (!strcmp(it->name, name))
			return it;
	fail("unknown item '%s'", name);
	return NULL;
}

static struct item_value *find_item(int item)
{
	for (struct item_value *it = items; it->name; it++)
		if (it->item == item)
			return it;
	return NULL;
}

static int env_index(const char *name)
{
	size_t len = strlen(name);
	for (int i = 0; i < job_env_count; i++)
		if (!strncmp(job_env[i], name, len) && job_env[i][len] == '=')
			return i;
	return -1;
}

static void env_put(const char *name, const char *value)
{
	char *entry;
	int i = env_index(name);
	if (asprintf(&entry, "%s=%s", name, value) < 0)
		fail("out of memory");
	if (i >= 0) {
		free(job_env[i]);
		job_env[i] = entry;
		return;
	}
	if (job_env_count >= MAX_ENTRIES)
		fail("too many environment entries");
	job_env[job_env_count++] = entry;
	job_env[job_env_count] = NULL;
}

/* ---- the SPANK API ---- */

const char *spank_strerror(spank_err_t err)
{
	switch ((int) err) {
	case ESPANK_SUCCESS: return "Success";
	case ESPANK_ERROR: return "Generic error";
	case ESPANK_BAD_ARG: return "Bad argument";
	case ESPANK_NOT_TASK: return "Not in task context";
	case ESPANK_ENV_EXISTS: return "Environment variable exists";
	case ESPANK_ENV_NOEXIST: return "No such environment variable";
	case ESPANK_NOSPACE: return "Buffer too small";
	case ESPANK_NOT_REMOTE: return "Valid only in remote context";
	case ESPANK_NOEXIST: return "Id/PID does not exist on this node";
	case ESPANK_NOT_EXECD: return "Lookup by PID requested, but no tasks running";
	case ESPANK_NOT_AVAIL: return "Item not available from this callback";
	case ESPANK_NOT_LOCAL: return "Valid only in local or allocator context";
	default: return "Unknown error";
	}
}

int spank_symbol_supported(const char *symbol)
{
	return symbol != NULL;
}

int spank_remote(spank_t spank)
{
	return spank == &the_handle && context == S_CTX_REMOTE;
}

spank_context_t spank_context(void)
{
	return context;
}

spank_err_t spank_option_register(spank_t spank, struct spank_option *opt)
{
	if (spank != &the_handle || !opt || !opt->name || !opt->usage)
		return ESPANK_BAD_ARG;
	if (strlen(opt->name) > SPANK_OPTION_MAXLEN)
		return ESPANK_BAD_ARG;
	if (option_count >= 64)
		return ESPANK_ERROR;
	for (int i = 0; i < option_count; i++)
		if (!strcmp(options[i].opt.name, opt->name))
			return ESPANK_ERROR; /* Slurm refuses duplicate names too */
	options[option_count].opt = *opt;
	option_count++;
	fprintf(events, "register %s has_arg=%d arginfo=%s usage=", opt->name, opt->has_arg,
		opt->arginfo ? opt->arginfo : "(null)");
	print_escaped(opt->usage);
	fputc('\n', events);
	return ESPANK_SUCCESS;
}

spank_err_t spank_option_getopt(spank_t spank, struct spank_option *opt, char **optarg)
{
	if (spank != &the_handle || !opt || !opt->name || !optarg)
		return ESPANK_BAD_ARG;
	for (int i = 0; i < option_count; i++) {
		if (!strcmp(options[i].opt.name, opt->name)) {
			if (!options[i].given)
				return ESPANK_ERROR;
			*optarg = options[i].value;
			return ESPANK_SUCCESS;
		}
	}
	return ESPANK_ERROR;
}

spank_err_t spank_get_item(spank_t spank, spank_item_t item, ...)
{
	va_list ap;
	struct item_value *it = find_item(item);
	spank_err_t rc = ESPANK_SUCCESS;

	if (spank != &the_handle)
		return ESPANK_BAD_ARG;
	if (!it || !it->set)
		return ESPANK_NOT_AVAIL;
	va_start(ap, item);
	switch (item) {
	case S_JOB_ARGV: {
		int *argc = va_arg(ap, int *);
		char ***argv = va_arg(ap, char ***);
		static char *words[MAX_ENTRIES + 1];
		int n = 0;
		if (it->is_null) {
			*argc = 0;
			*argv = NULL;
			break;
		}
		char *copy = keep_strdup(it->text);
		for (char *w = strtok(copy, ","); w && n < MAX_ENTRIES; w = strtok(NULL, ","))
			words[n++] = w;
		words[n] = NULL;
		*argc = n;
		*argv = words;
		break;
	}
	case S_SLURM_VERSION:
		*va_arg(ap, char **) = it->is_null ? NULL : it->text;
		break;
	case S_JOB_NCPUS:
		*va_arg(ap, uint16_t *) = (uint16_t) strtoul(it->text, NULL, 0);
		break;
	case S_TASK_ID:
	case S_TASK_EXIT_STATUS:
		*va_arg(ap, int *) = (int) strtol(it->text, NULL, 0);
		break;
	case S_TASK_PID:
		*va_arg(ap, pid_t *) = (pid_t) strtol(it->text, NULL, 0);
		break;
	case S_JOB_ALLOC_MEM:
		*va_arg(ap, uint64_t *) = strtoull(it->text, NULL, 0);
		break;
	default:
		*va_arg(ap, uint32_t *) = (uint32_t) strtoul(it->text, NULL, 0);
		break;
	}
	va_end(ap);
	return rc;
}

spank_err_t spank_getenv(spank_t spank, const char *var, char *buf, int len)
{
	int i;
	const char *value;
	if (spank != &the_handle || !var || !buf || len <= 0)
		return ESPANK_BAD_ARG;
	if (context != S_CTX_REMOTE)
		return ESPANK_NOT_REMOTE;
	if ((i = env_index(var)) < 0)
		return ESPANK_ENV_NOEXIST;
	value = strchr(job_env[i], '=') + 1;
	if ((int) strlen(value) >= len)
		return ESPANK_NOSPACE;
	strcpy(buf, value);
	return ESPANK_SUCCESS;
}

spank_err_t spank_setenv(spank_t spank, const char *var, const char *val, int overwrite)
{
	if (spank != &the_handle || !var || !val)
		return ESPANK_BAD_ARG;
	if (context != S_CTX_REMOTE)
		return ESPANK_NOT_REMOTE;
	if (env_index(var) >= 0 && !overwrite)
		return ESPANK_ENV_EXISTS;
	env_put(var, val);
	fputs("setenv ", events);
	print_escaped(var);
	fputc('=', events);
	print_escaped(val);
	fputc('\n', events);
	return ESPANK_SUCCESS;
}

spank_err_t spank_unsetenv(spank_t spank, const char *var)
{
	int i;
	if (spank != &the_handle || !var)
		return ESPANK_BAD_ARG;
	if (context != S_CTX_REMOTE)
		return ESPANK_NOT_REMOTE;
	if ((i = env_index(var)) >= 0) {
		free(job_env[i]);
		job_env[i] = job_env[--job_env_count];
		job_env[job_env_count] = NULL;
	}
	fprintf(events, "unsetenv %s\n", var);
	return ESPANK_SUCCESS;
}

spank_err_t spank_job_control_setenv(spank_t sp, const char *name, const char *value,
				     int overwrite)
{
	(void) overwrite;
	if (sp != &the_handle || !name || !value)
		return ESPANK_BAD_ARG;
	if (context != S_CTX_LOCAL && context != S_CTX_ALLOCATOR)
		return ESPANK_NOT_LOCAL;
	fputs("control_setenv ", events);
	print_escaped(name);
	fputc('=', events);
	print_escaped(value);
	fputc('\n', events);
	return ESPANK_SUCCESS;
}

spank_err_t spank_job_control_getenv(spank_t sp, const char *name, char *buf, int len)
{
	(void) sp; (void) name; (void) buf; (void) len;
	return ESPANK_ENV_NOEXIST;
}

spank_err_t spank_job_control_unsetenv(spank_t sp, const char *name)
{
	(void) sp; (void) name;
	return ESPANK_SUCCESS;
}

static void log_line(const char *level, const char *fmt, va_list ap)
{
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		fail("out of memory");
	fprintf(events, "log %s ", level);
	print_escaped(text);
	fputc('\n', events);
	free(text);
}

#define LOG_FUNCTION(fn, level)                   \
	void fn(const char *format, ...)          \
	{                                         \
		va_list ap;                       \
		va_start(ap, format);             \
		log_line(level, format, ap);      \
		va_end(ap);                       \
	}

LOG_FUNCTION(slurm_info, "info")
LOG_FUNCTION(slurm_error, "error")
LOG_FUNCTION(slurm_verbose, "verbose")
LOG_FUNCTION(slurm_debug, "debug")
LOG_FUNCTION(slurm_debug2, "debug2")
LOG_FUNCTION(slurm_debug3, "debug3")
LOG_FUNCTION(slurm_spank_log, "spank")

/* slurm.h functions a plugin may import. The host has no controller: loading a job fails. */
int slurm_get_errno(void)
{
	return 1;
}

char *slurm_strerror(int errnum)
{
	(void) errnum;
	return "no controller in spank_host";
}

static int job_given, job_fail;
static uint32_t job_time_limit = INFINITE;
static char *job_tres_per_node, *job_nodes, *job_gres_detail;

static int fake_load_job(job_info_msg_t **resp, uint32_t job_id)
{
	job_info_msg_t *msg;
	slurm_job_info_t *job;
	fprintf(events, "rpc slurm_load_job %u\n", job_id);
	*resp = NULL;
	if (!job_given || job_fail)
		return -1;
	msg = calloc(1, sizeof(*msg));
	job = calloc(1, sizeof(*job));
	job->job_id = job_id;
	job->time_limit = job_time_limit;
	job->tres_per_node = job_tres_per_node;
	job->nodes = job_nodes;
	if (job_gres_detail) {
		job->gres_detail_cnt = 1;
		job->gres_detail_str = calloc(1, sizeof(char *));
		job->gres_detail_str[0] = job_gres_detail;
	}
	msg->record_count = 1;
	msg->job_array = job;
	*resp = msg;
	return 0;
}

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(26, 5, 0)
int slurm_load_job(job_info_msg_t **resp, slurm_step_id_t step_id, uint16_t show_flags)
{
	(void) show_flags;
	return fake_load_job(resp, step_id.job_id);
}
#else
int slurm_load_job(job_info_msg_t **resp, uint32_t job_id, uint16_t show_flags)
{
	(void) show_flags;
	return fake_load_job(resp, job_id);
}
#endif

void slurm_free_job_info_msg(job_info_msg_t *msg)
{
	if (!msg)
		return;
	if (msg->job_array)
		free(msg->job_array->gres_detail_str);
	free(msg->job_array);
	free(msg);
}

/* The host is one node: a hostlist is the comma list it was given; find = position.
 * Written with `struct hostlist *`, which is hostlist_t in 22.05 and hostlist_t * from 24.11 on. */
struct hostlist {
	char *text;
};

struct hostlist *slurm_hostlist_create(const char *list)
{
	struct hostlist *hl = calloc(1, sizeof(*hl));
	hl->text = strdup(list ? list : "");
	return hl;
}

int slurm_hostlist_find(struct hostlist *hl, const char *hostname)
{
	int i = 0;
	char *copy = strdup(hl->text), *save = NULL;
	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save), i++) {
		if (!strcmp(w, hostname)) {
			free(copy);
			return i;
		}
	}
	free(copy);
	return -1;
}

void slurm_hostlist_destroy(struct hostlist *hl)
{
	if (!hl)
		return;
	free(hl->text);
	free(hl);
}

/* ---- driver ---- */

static const char *hooks[] = {
	"init", "job_prolog", "init_post_opt", "local_user_init", "user_init",
	"task_init_privileged", "task_init", "task_post_fork", "task_exit",
	"job_epilog", "slurmd_exit", "exit", NULL,
};

static spank_context_t parse_context(const char *name)
{
	if (!strcmp(name, "local")) return S_CTX_LOCAL;
	if (!strcmp(name, "remote")) return S_CTX_REMOTE;
	if (!strcmp(name, "allocator")) return S_CTX_ALLOCATOR;
	if (!strcmp(name, "slurmd")) return S_CTX_SLURMD;
	if (!strcmp(name, "job_script")) return S_CTX_JOB_SCRIPT;
	fail("unknown context '%s'", name);
	return S_CTX_ERROR;
}

int main(int argc, char **argv)
{
	char *plugin_args[MAX_ENTRIES + 1];
	int plugin_argc = 0;
	void *plugin;

	events = stdout;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		fail("usage: spank_host PLUGIN.so [--context C] [--arg W] [--item N=V] "
		     "[--null-item N] [--env N=V] STEP...");
	plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!plugin)
		fail("dlopen %s: %s", argv[1], dlerror());

	/* Settings first (they may appear anywhere), then the steps in order. */
	for (int i = 2; i < argc; i++) {
		const char *flag = argv[i];
		const char *value = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(flag, "--describe")) continue;
		if (!value)
			fail("%s needs a value", flag);
		i++;
		if (!strcmp(flag, "--context")) {
			context = parse_context(value);
		} else if (!strcmp(flag, "--arg")) {
			if (plugin_argc >= MAX_ENTRIES)
				fail("too many --arg");
			plugin_args[plugin_argc++] = (char *) value;
		} else if (!strcmp(flag, "--item")) {
			char *copy = keep_strdup(value), *eq = strchr(copy, '=');
			if (!eq)
				fail("--item %s: expected NAME=VALUE", value);
			*eq = '\0';
			struct item_value *it = find_item_by_name(copy);
			it->set = 1;
			it->text = eq + 1;
		} else if (!strcmp(flag, "--null-item")) {
			struct item_value *it = find_item_by_name(value);
			it->set = 1;
			it->is_null = 1;
			it->text = "";
		} else if (!strcmp(flag, "--job")) {
			char *copy = keep_strdup(value), *eq = strchr(copy, '=');
			if (!eq)
				fail("--job %s: expected FIELD=VALUE", value);
			*eq = '\0';
			job_given = 1;
			if (!strcmp(copy, "time_limit"))
				job_time_limit = strcmp(eq + 1, "infinite") ? (uint32_t) strtoul(eq + 1, NULL, 0) : INFINITE;
			else if (!strcmp(copy, "tres_per_node"))
				job_tres_per_node = eq + 1;
			else if (!strcmp(copy, "nodes"))
				job_nodes = eq + 1;
			else if (!strcmp(copy, "gres_detail"))
				job_gres_detail = eq + 1;
			else if (!strcmp(copy, "fail"))
				job_fail = atoi(eq + 1);
			else
				fail("--job: unknown field '%s'", copy);
		} else if (!strcmp(flag, "--env")) {
			char *copy = keep_strdup(value), *eq = strchr(copy, '=');
			if (!eq)
				fail("--env %s: expected NAME=VALUE", value);
			*eq = '\0';
			env_put(copy, eq + 1);
		} else if (strcmp(flag, "--call") && strcmp(flag, "--option") && strcmp(flag, "--task")) {
			fail("unknown flag %s", flag);
		}
	}
	plugin_args[plugin_argc] = NULL;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--describe")) {
			const char *name = dlsym(plugin, "plugin_name");
			const char *type = dlsym(plugin, "plugin_type");
			const unsigned int *version = dlsym(plugin, "plugin_version");
			fprintf(events, "describe name=%s type=%s version=0x%x\n",
				name ? name : "(none)", type ? type : "(none)", version ? *version : 0);
			for (const char **h = hooks; *h; h++) {
				char symbol[64];
				snprintf(symbol, sizeof(symbol), "slurm_spank_%s", *h);
				if (dlsym(plugin, symbol))
					fprintf(events, "exported %s\n", *h);
			}
			continue;
		}
		if (!strcmp(argv[i], "--call")) {
			char symbol[64];
			const char *hook = argv[++i];
			snprintf(symbol, sizeof(symbol), "slurm_spank_%s", hook);
			spank_f *fn = (spank_f *) dlsym(plugin, symbol);
			if (!fn) {
				fprintf(events, "missing %s\n", hook);
				continue;
			}
			int rc = fn(&the_handle, plugin_argc, plugin_args);
			fprintf(events, "rc %s %d\n", hook, rc);
			continue;
		}
		if (!strcmp(argv[i], "--task")) {
			const char *command = argv[++i];
			spank_f *privileged = (spank_f *) dlsym(plugin, "slurm_spank_task_init_privileged");
			spank_f *task_init = (spank_f *) dlsym(plugin, "slurm_spank_task_init");
			spank_f *post_fork = (spank_f *) dlsym(plugin, "slurm_spank_task_post_fork");
			spank_f *task_exit = (spank_f *) dlsym(plugin, "slurm_spank_task_exit");
			int status = 0;
			static char status_text[32], pid_text[32];
			pid_t pid;
			fflush(stdout);
			fflush(stderr);
			pid = fork();
			if (pid < 0)
				fail("fork failed");
			if (pid == 0) {
				/* The task's stdout is its own stream (SPANK_HOST_TASK_FD), as slurmstepd
				 * gives each task its own pipe: the host's lines never land inside it. */
				const char *task_fd_text = getenv("SPANK_HOST_TASK_FD");
				if (task_fd_text) {
					int task_fd = atoi(task_fd_text);
					int events_fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
					if (events_fd < 0 || !(events = fdopen(events_fd, "w")) ||
					    dup2(task_fd, 1) < 0)
						_exit(126);
					setvbuf(events, NULL, _IOLBF, 0);
					close(task_fd);
				}
				if (privileged) {
					int rc = privileged(&the_handle, plugin_argc, plugin_args);
					fprintf(events, "rc task_init_privileged %d\n", rc);
					if (rc)
						_exit(1);
				}
				if (task_init) {
					int rc = task_init(&the_handle, plugin_argc, plugin_args);
					fprintf(events, "rc task_init %d\n", rc);
					if (rc)
						_exit(1);
				}
				fflush(events);
				execle("/bin/sh", "sh", "-c", command, (char *) NULL, job_env);
				_exit(127);
			}
			snprintf(pid_text, sizeof(pid_text), "%d", (int) pid);
			find_item(S_TASK_PID)->set = 1;
			find_item(S_TASK_PID)->text = pid_text;
			if (post_fork)
				fprintf(events, "rc task_post_fork %d\n", post_fork(&the_handle, plugin_argc, plugin_args));
			while (waitpid(pid, &status, 0) < 0)
				;
			fprintf(events, "task_status %d\n", status);
			snprintf(status_text, sizeof(status_text), "%d", status);
			find_item(S_TASK_EXIT_STATUS)->set = 1;
			find_item(S_TASK_EXIT_STATUS)->text = status_text;
			if (task_exit)
				fprintf(events, "rc task_exit %d\n", task_exit(&the_handle, plugin_argc, plugin_args));
			continue;
		}
		if (!strcmp(argv[i], "--option")) {
			char *copy = keep_strdup(argv[++i]), *eq = strchr(copy, '=');
			struct registered_option *found = NULL;
			if (eq)
				*eq = '\0';
			for (int j = 0; j < option_count; j++)
				if (!strcmp(options[j].opt.name, copy))
					found = &options[j];
			if (!found) {
				fprintf(events, "rc option:%s unregistered\n", copy);
				continue;
			}
			found->given = 1;
			found->value = eq ? eq + 1 : NULL;
			int rc = found->opt.cb ? found->opt.cb(found->opt.val, found->value,
							     context == S_CTX_REMOTE) : 0;
			fprintf(events, "rc option:%s %d\n", copy, rc);
			continue;
		}
		i++; /* a setting and its value, handled above */
	}
	for (int i = 0; i < job_env_count; i++) {
		fputs("env ", events);
		print_escaped(job_env[i]);
		fputc('\n', events);
	}
	return 0;
}
