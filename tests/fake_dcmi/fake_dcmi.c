/*
 * A fake libdcmi.so for tests: the DCMI functions the Ascend backend calls, with the
 * prototypes and structures of Huawei's dcmi_interface_api.h (Ascend/mind-cluster,
 * component/ascend-common/devmanager/dcmi/dcmi_interface_api.h), answering from a
 * recording of a real machine.
 *
 * The values come from a key=value file that tests/conftest_ascend.py writes from a recorded
 * `npu-smi info` table (tests/fixtures/ascend): one line per chip,
 *
 *     driver_version=25.5.1
 *     chip card=0 dev=0 logic=0 type=Ascend name=910B3 bus=0000:C1:00.0 health=0
 *          power_dw=994 temp=34 aicore=0 hbm_used_mb=59189 hbm_total_mb=65536
 *          proc=3233241:58556530688 ...
 *
 * A key that is absent (npu-smi printed "-", or nothing was recorded) makes its function
 * return DCMI_ERR_CODE_NOT_SUPPORT, as the driver does for a field a chip lacks.
 *
 * Test hooks (exported, called through ctypes): fake_dcmi_load(path), fake_dcmi_set_error(fn,
 * card, dev, code), fake_dcmi_lose(card, dev) (every call on the chip returns
 * DCMI_ERR_CODE_DEVICE_NOT_EXIST), fake_dcmi_set_value(card, dev, key, value),
 * fake_dcmi_set_delay(fn, card, dev, usec), fake_dcmi_set_init_error(code), and call counters
 * fake_dcmi_count(fn, card, dev) (-1: any) / fake_dcmi_reset_counts(). Built with
 * -DFAKE_DCMI_OLD_DRIVER it lacks dcmi_get_device_resource_info and
 * dcmi_get_device_pcie_info_v2, as an older driver's library does.
 * Without fake_dcmi_load, dcmi_init loads the file named by TRACKLAB_FAKE_DCMI_DATA.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CHIP_NAME_LEN 32
#define MAX_LENTH 256
#define MAX_CHIPS 128
#define MAX_PROCS 32
#define MAX_RULES 64
#define MAX_COUNTERS 4096

#define DCMI_OK 0
#define DCMI_ERR_CODE_DEVICE_NOT_EXIST (-8008)
#define DCMI_ERR_CODE_INVALID_DEVICE_ID (-8007)
#define DCMI_ERR_CODE_NOT_SUPPORT (-8255)

struct dcmi_chip_info {
    unsigned char chip_type[MAX_CHIP_NAME_LEN];
    unsigned char chip_name[MAX_CHIP_NAME_LEN];
    unsigned char chip_ver[MAX_CHIP_NAME_LEN];
    unsigned int aicore_cnt;
};

struct dcmi_pcie_info {
    unsigned int deviceid;
    unsigned int venderid;
    unsigned int subvenderid;
    unsigned int subdeviceid;
    unsigned int bdf_deviceid;
    unsigned int bdf_busid;
    unsigned int bdf_funcid;
};

struct dcmi_pcie_info_all {
    unsigned int venderid;
    unsigned int subvenderid;
    unsigned int deviceid;
    unsigned int subdeviceid;
    int domain;
    unsigned int bdf_busid;
    unsigned int bdf_deviceid;
    unsigned int bdf_funcid;
    unsigned char reserve[32];
};

struct dcmi_elabel_info {
    char product_name[MAX_LENTH];
    char model[MAX_LENTH];
    char manufacturer[MAX_LENTH];
    char manufacturer_date[MAX_LENTH];
    char serial_number[MAX_LENTH];
};

struct dcmi_hbm_info {
    unsigned long long memory_size;
    unsigned int freq;
    unsigned long long memory_usage;
    int temp;
    unsigned int bandwith_util_rate;
};

struct dcmi_proc_mem_info {
    int proc_id;
    unsigned long proc_mem_usage;
};

/* The numeric values of a chip, by key; has[] says whether the recording had it. */
enum { V_LOGIC, V_HEALTH, V_POWER_DW, V_TEMP, V_AICORE, V_AICPU, V_HBM_BW, V_HBM_USED_MB,
       V_HBM_TOTAL_MB, V_AICORE_CNT, NVALUES };
static const char *VALUE_KEYS[NVALUES] = {"logic", "health", "power_dw", "temp", "aicore",
    "aicpu", "hbm_bw", "hbm_used_mb", "hbm_total_mb", "aicore_cnt"};

struct chip {
    int card, dev;
    long long value[NVALUES];
    int has[NVALUES];
    char type[MAX_CHIP_NAME_LEN], name[MAX_CHIP_NAME_LEN], bus[32], serial[MAX_LENTH];
    int nprocs;
    int pid[MAX_PROCS];
    unsigned long long bytes[MAX_PROCS];
    int has_procs;
    int lost;
};

struct rule { char fn[64]; int card, dev, value; };
struct counter { char fn[64]; int card, dev; long count; };

static struct chip chips[MAX_CHIPS];
static int nchips = 0, loaded = 0, init_error = 0;
static char driver_version[MAX_LENTH];
static struct rule errors[MAX_RULES], delays[MAX_RULES];
static int nerrors = 0, ndelays = 0;
static struct counter counters[MAX_COUNTERS];
static int ncounters = 0;

static void copy_text(char *dst, const char *src, size_t size) {
    strncpy(dst, src, size - 1);
    dst[size - 1] = '\0';
}

static void parse_chip(char *rest) {
    if (nchips >= MAX_CHIPS) return;
    struct chip *c = &chips[nchips++];
    memset(c, 0, sizeof(*c));
    for (char *tok = strtok(rest, " \t\n"); tok; tok = strtok(NULL, " \t\n")) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = '\0';
        const char *key = tok, *val = eq + 1;
        if (!strcmp(key, "card")) c->card = atoi(val);
        else if (!strcmp(key, "dev")) c->dev = atoi(val);
        else if (!strcmp(key, "type")) copy_text(c->type, val, sizeof(c->type));
        else if (!strcmp(key, "name")) copy_text(c->name, val, sizeof(c->name));
        else if (!strcmp(key, "bus")) copy_text(c->bus, val, sizeof(c->bus));
        else if (!strcmp(key, "serial")) copy_text(c->serial, val, sizeof(c->serial));
        else if (!strcmp(key, "procs")) c->has_procs = 1;  /* a process table, maybe empty */
        else if (!strcmp(key, "proc") && c->nprocs < MAX_PROCS) {
            c->has_procs = 1;
            c->pid[c->nprocs] = atoi(val);
            const char *colon = strchr(val, ':');
            c->bytes[c->nprocs++] = colon ? strtoull(colon + 1, NULL, 10) : 0;
        } else {
            for (int i = 0; i < NVALUES; i++) {
                if (!strcmp(key, VALUE_KEYS[i])) {
                    c->value[i] = strtoll(val, NULL, 10);
                    c->has[i] = 1;
                }
            }
        }
    }
}

int fake_dcmi_load(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    nchips = nerrors = ndelays = ncounters = init_error = 0;
    driver_version[0] = '\0';
    char line[8192];
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "driver_version=", 15)) {
            copy_text(driver_version, line + 15, sizeof(driver_version));
            driver_version[strcspn(driver_version, "\n")] = '\0';
        } else if (!strncmp(line, "chip ", 5)) {
            parse_chip(line + 5);
        }
    }
    fclose(f);
    loaded = 1;
    return nchips;
}

/* -- test hooks ------------------------------------------------------------------------ */
static void set_rule(struct rule *rules, int *n, const char *fn, int card, int dev, int value) {
    for (int i = 0; i < *n; i++) {
        if (!strcmp(rules[i].fn, fn) && rules[i].card == card && rules[i].dev == dev) {
            rules[i].value = value;
            return;
        }
    }
    if (*n >= MAX_RULES) return;
    copy_text(rules[*n].fn, fn, sizeof(rules[*n].fn));
    rules[*n].card = card;
    rules[*n].dev = dev;
    rules[(*n)++].value = value;
}

void fake_dcmi_set_error(const char *fn, int card, int dev, int code) {
    set_rule(errors, &nerrors, fn, card, dev, code);
}

void fake_dcmi_set_delay(const char *fn, int card, int dev, int usec) {
    set_rule(delays, &ndelays, fn, card, dev, usec);
}

void fake_dcmi_set_init_error(int code) { init_error = code; }

static struct chip *find_chip(int card, int dev) {
    for (int i = 0; i < nchips; i++)
        if (chips[i].card == card && chips[i].dev == dev) return &chips[i];
    return NULL;
}

void fake_dcmi_lose(int card, int dev) {
    struct chip *c = find_chip(card, dev);
    if (c) c->lost = 1;
}

int fake_dcmi_set_value(int card, int dev, const char *key, long long value) {
    struct chip *c = find_chip(card, dev);
    if (!c) return -1;
    for (int i = 0; i < NVALUES; i++) {
        if (!strcmp(key, VALUE_KEYS[i])) {
            c->value[i] = value;
            c->has[i] = 1;
            return 0;
        }
    }
    return -1;
}

long fake_dcmi_count(const char *fn, int card, int dev) {
    long total = 0;
    for (int i = 0; i < ncounters; i++) {
        if ((!fn || !strcmp(counters[i].fn, fn)) && (card < 0 || counters[i].card == card) &&
            (dev < 0 || counters[i].dev == dev))
            total += counters[i].count;
    }
    return total;
}

void fake_dcmi_reset_counts(void) { ncounters = 0; }

/* Every DCMI entry point starts here: count the call, sleep an injected delay, and return an
 * injected error, the lost-chip code, or 0 with the chip in *out. */
static int enter(const char *fn, int card, int dev, struct chip **out) {
    int i;
    for (i = 0; i < ncounters; i++)
        if (!strcmp(counters[i].fn, fn) && counters[i].card == card && counters[i].dev == dev)
            break;
    if (i == ncounters && ncounters < MAX_COUNTERS) {
        copy_text(counters[i].fn, fn, sizeof(counters[i].fn));
        counters[i].card = card;
        counters[i].dev = dev;
        counters[i].count = 0;
        ncounters++;
    }
    if (i < MAX_COUNTERS) counters[i].count++;
    for (int d = 0; d < ndelays; d++) {
        if (!strcmp(delays[d].fn, fn) && delays[d].value > 0 &&
            (delays[d].card < 0 || delays[d].card == card) &&
            (delays[d].dev < 0 || delays[d].dev == dev)) {
            struct timespec ts = {delays[d].value / 1000000, (delays[d].value % 1000000) * 1000L};
            nanosleep(&ts, NULL);
        }
    }
    for (int e = 0; e < nerrors; e++) {
        if (!strcmp(errors[e].fn, fn) && (errors[e].card < 0 || errors[e].card == card) &&
            (errors[e].dev < 0 || errors[e].dev == dev) && errors[e].value != 0)
            return errors[e].value;
    }
    if (card < 0) return DCMI_OK;  /* a call about the library, not a chip */
    if (dev < 0) {  /* a call about a card */
        for (int k = 0; k < nchips; k++)
            if (chips[k].card == card) return DCMI_OK;
        return DCMI_ERR_CODE_INVALID_DEVICE_ID;
    }
    struct chip *c = find_chip(card, dev);
    if (!c) return DCMI_ERR_CODE_INVALID_DEVICE_ID;
    if (c->lost) return DCMI_ERR_CODE_DEVICE_NOT_EXIST;
    if (out) *out = c;
    return DCMI_OK;
}

#define ENTER(fn, card, dev)                      \
    struct chip *c = NULL;                        \
    int rc_ = enter(fn, card, dev, &c);           \
    if (rc_ != DCMI_OK) return rc_;               \
    (void)c

#define NEED(i) \
    if (!c->has[i]) return DCMI_ERR_CODE_NOT_SUPPORT

/* -- the DCMI API ---------------------------------------------------------------------- */
int dcmi_init(void) {
    if (!loaded) {
        const char *path = getenv("TRACKLAB_FAKE_DCMI_DATA");
        if (!path || fake_dcmi_load(path) < 0) return DCMI_ERR_CODE_DEVICE_NOT_EXIST;
    }
    int rc = enter("dcmi_init", -1, -1, NULL);
    return rc != DCMI_OK ? rc : init_error;
}

int dcmi_get_driver_version(char *driver_ver, unsigned int len) {
    int rc = enter("dcmi_get_driver_version", -1, -1, NULL);
    if (rc != DCMI_OK) return rc;
    if (!driver_version[0]) return DCMI_ERR_CODE_NOT_SUPPORT;
    snprintf(driver_ver, len, "%s", driver_version);
    return DCMI_OK;
}

int dcmi_get_card_list(int *card_num, int *card_list, int list_len) {
    int rc = enter("dcmi_get_card_list", -1, -1, NULL);
    if (rc != DCMI_OK) return rc;
    int n = 0;
    for (int i = 0; i < nchips; i++) {
        int seen = 0;
        for (int j = 0; j < n; j++) seen |= card_list[j] == chips[i].card;
        if (!seen && n < list_len) card_list[n++] = chips[i].card;
    }
    *card_num = n;
    return DCMI_OK;
}

int dcmi_get_device_id_in_card(int card_id, int *device_id_max, int *mcu_id, int *cpu_id) {
    int rc = enter("dcmi_get_device_id_in_card", card_id, -1, NULL);
    if (rc != DCMI_OK) return rc;
    int n = 0;
    for (int i = 0; i < nchips; i++) n += chips[i].card == card_id;
    if (!n) return DCMI_ERR_CODE_INVALID_DEVICE_ID;
    *device_id_max = n;
    *mcu_id = n;  /* the MCU comes after the NPU chips, as in `npu-smi info -m` */
    *cpu_id = -1;
    return DCMI_OK;
}

int dcmi_get_device_logic_id(int *device_logic_id, int card_id, int device_id) {
    ENTER("dcmi_get_device_logic_id", card_id, device_id);
    NEED(V_LOGIC);
    *device_logic_id = (int)c->value[V_LOGIC];
    return DCMI_OK;
}

int dcmi_get_device_chip_info(int card_id, int device_id, struct dcmi_chip_info *chip_info) {
    ENTER("dcmi_get_device_chip_info", card_id, device_id);
    memset(chip_info, 0, sizeof(*chip_info));
    copy_text((char *)chip_info->chip_type, c->type, MAX_CHIP_NAME_LEN);
    copy_text((char *)chip_info->chip_name, c->name, MAX_CHIP_NAME_LEN);
    chip_info->aicore_cnt = c->has[V_AICORE_CNT] ? (unsigned int)c->value[V_AICORE_CNT] : 0;
    return DCMI_OK;
}

static int parse_bus(const char *bus, unsigned int v[4]) {
    return sscanf(bus, "%x:%x:%x.%x", &v[0], &v[1], &v[2], &v[3]) == 4 ? DCMI_OK
                                                                        : DCMI_ERR_CODE_NOT_SUPPORT;
}

#ifndef FAKE_DCMI_OLD_DRIVER
int dcmi_get_device_pcie_info_v2(int card_id, int device_id, struct dcmi_pcie_info_all *info) {
    ENTER("dcmi_get_device_pcie_info_v2", card_id, device_id);
    unsigned int v[4];
    if (parse_bus(c->bus, v) != DCMI_OK) return DCMI_ERR_CODE_NOT_SUPPORT;
    memset(info, 0, sizeof(*info));
    info->domain = (int)v[0];
    info->bdf_busid = v[1];
    info->bdf_deviceid = v[2];
    info->bdf_funcid = v[3];
    return DCMI_OK;
}
#endif

int dcmi_get_device_pcie_info(int card_id, int device_id, struct dcmi_pcie_info *info) {
    ENTER("dcmi_get_device_pcie_info", card_id, device_id);
    unsigned int v[4];
    if (parse_bus(c->bus, v) != DCMI_OK) return DCMI_ERR_CODE_NOT_SUPPORT;
    memset(info, 0, sizeof(*info));
    info->bdf_busid = v[1];
    info->bdf_deviceid = v[2];
    info->bdf_funcid = v[3];
    return DCMI_OK;
}

int dcmi_get_device_elabel_info(int card_id, int device_id, struct dcmi_elabel_info *info) {
    ENTER("dcmi_get_device_elabel_info", card_id, device_id);
    memset(info, 0, sizeof(*info));
    copy_text(info->serial_number, c->serial, MAX_LENTH);
    return DCMI_OK;
}

int dcmi_get_device_health(int card_id, int device_id, unsigned int *health) {
    ENTER("dcmi_get_device_health", card_id, device_id);
    NEED(V_HEALTH);
    *health = (unsigned int)c->value[V_HEALTH];
    return DCMI_OK;
}

int dcmi_get_device_utilization_rate(int card_id, int device_id, int input_type,
                                     unsigned int *utilization_rate) {
    ENTER("dcmi_get_device_utilization_rate", card_id, device_id);
    int key = input_type == 2 ? V_AICORE : input_type == 3 ? V_AICPU
            : input_type == 10 ? V_HBM_BW : -1;
    if (key < 0 || !c->has[key]) return DCMI_ERR_CODE_NOT_SUPPORT;
    *utilization_rate = (unsigned int)c->value[key];
    return DCMI_OK;
}

int dcmi_get_device_hbm_info(int card_id, int device_id, struct dcmi_hbm_info *hbm_info) {
    ENTER("dcmi_get_device_hbm_info", card_id, device_id);
    NEED(V_HBM_TOTAL_MB);
    memset(hbm_info, 0, sizeof(*hbm_info));
    hbm_info->memory_size = (unsigned long long)c->value[V_HBM_TOTAL_MB];
    hbm_info->memory_usage = (unsigned long long)c->value[V_HBM_USED_MB];
    /* Not recorded by npu-smi info: left 0, and the backend does not read them. */
    hbm_info->freq = 0;
    hbm_info->temp = 0;
    hbm_info->bandwith_util_rate = c->has[V_HBM_BW] ? (unsigned int)c->value[V_HBM_BW] : 0;
    return DCMI_OK;
}

int dcmi_get_device_power_info(int card_id, int device_id, int *power) {
    ENTER("dcmi_get_device_power_info", card_id, device_id);
    NEED(V_POWER_DW);
    *power = (int)c->value[V_POWER_DW];
    return DCMI_OK;
}

int dcmi_get_device_temperature(int card_id, int device_id, int *temperature) {
    ENTER("dcmi_get_device_temperature", card_id, device_id);
    NEED(V_TEMP);
    *temperature = (int)c->value[V_TEMP];
    return DCMI_OK;
}

#ifndef FAKE_DCMI_OLD_DRIVER
int dcmi_get_device_resource_info(int card_id, int device_id,
                                  struct dcmi_proc_mem_info *proc_info, int *proc_num) {
    ENTER("dcmi_get_device_resource_info", card_id, device_id);
    if (!c->has_procs) return DCMI_ERR_CODE_NOT_SUPPORT;
    for (int i = 0; i < c->nprocs; i++) {
        proc_info[i].proc_id = c->pid[i];
        proc_info[i].proc_mem_usage = (unsigned long)c->bytes[i];
    }
    *proc_num = c->nprocs;
    return DCMI_OK;
}
#endif
