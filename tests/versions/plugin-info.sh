#!/bin/bash
# plugin-info.sh PLUGIN.so
#
# Print the three symbols Slurm's plugin loader checks, read statically from
# the ELF file's DYNAMIC symbol table (what dlsym sees) with readelf; the
# library is never loaded or run:
#
#   plugin_name=<string>
#   plugin_type=<string>
#   plugin_version=0xNNNNNN      (uint32, hex, as SLURM_VERSION_NUMBER is written)
#
# Slurm does dlsym("plugin_name") / dlsym("plugin_type") and reads the symbol's
# address as a `const char *`, and dlsym("plugin_version") as `uint32_t *`; so
# the strings must be NUL-terminated char ARRAYS, not pointers.  A symbol that
# is missing, undefined, not an object, of the wrong size, a relocated pointer
# or not NUL-terminated is reported on stderr and makes the exit status 1
# (the lines that could be read are still printed).

set -euo pipefail

die() { printf 'plugin-info: %s\n' "$*" >&2; exit 2; }

[[ $# -eq 1 && $1 != -* ]] || { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }
so=$1
[[ -r $so ]] || die "$so: not readable"
command -v readelf >/dev/null || die "readelf (binutils) not found"

header=$(LC_ALL=C readelf -W -h "$so" 2>/dev/null) || die "$so: not an ELF file"
case $header in
    *"little endian"*) endian=little ;;
    *"big endian"*) endian=big ;;
    *) die "$so: unknown ELF byte order" ;;
esac

# Section table as "NR NAME TYPE ADDR OFF SIZE ..." (for section 0, NAME is missing; never used).
sections=$(LC_ALL=C readelf -W -S "$so" | sed -n 's/^ *\[ *\([0-9][0-9]*\)\] *\([^ ]\)/\1 \2/p')
dynsyms=$(LC_ALL=C readelf -W --dyn-syms "$so")
relocs=$(LC_ALL=C readelf -W -r "$so" 2>/dev/null || true)

status=0
problem() { printf 'plugin-info: %s: %s\n' "$so" "$*" >&2; status=1; }

# lookup NAME -> sets sym_addr sym_size sym_sec_{type,addr,off}
lookup() {
    local name=$1 line
    # Columns: Num: Value Size Type Bind Vis Ndx Name[@version]
    line=$(awk -v n="$name" '
        NF >= 8 { s = $8; sub(/@.*/, "", s); if (s == n) { print; exit } }' <<<"$dynsyms")
    if [[ -z $line ]]; then
        problem "$name: not in the dynamic symbol table (not exported)"
        return 1
    fi
    local _num value size type bind vis ndx
    read -r _num value size type bind vis ndx _ <<<"$line"
    if [[ $ndx == UND ]]; then problem "$name: undefined"; return 1; fi
    [[ $type == OBJECT ]] || { problem "$name: symbol type $type, expected OBJECT"; return 1; }
    [[ $bind == GLOBAL || $bind == WEAK ]] || problem "$name: binding $bind"
    [[ $vis == DEFAULT || $vis == PROTECTED ]] || problem "$name: visibility $vis"
    [[ $ndx =~ ^[0-9]+$ ]] || { problem "$name: section index $ndx"; return 1; }
    # readelf prints big sizes in hex (0x...)
    if [[ $size == 0x* ]]; then size=$((size)); fi
    sym_addr=$((16#$value))
    sym_size=$size
    local sec
    sec=$(awk -v i="$ndx" '$1 == i' <<<"$sections")
    [[ -n $sec ]] || { problem "$name: section $ndx not found"; return 1; }
    read -r _ _ sym_sec_type sym_sec_addr sym_sec_off _ <<<"$sec"
    sym_sec_addr=$((16#$sym_sec_addr))
    sym_sec_off=$((16#$sym_sec_off))
    # A dynamic relocation at the symbol means its bytes are filled in at load
    # time (a pointer), so the file content is not what Slurm would read.
    if awk -v a="$(printf '%x' "$sym_addr")" '
            $1 ~ /^[0-9a-f]+$/ { x = $1; sub(/^0+/, "", x); if (x == a) f = 1 }
            END { exit !f }' <<<"$relocs"; then
        problem "$name: has a load-time relocation (a pointer?): Slurm reads the symbol's own bytes"
        return 1
    fi
    return 0
}

# read_bytes -> raw bytes of the current symbol on stdout
read_bytes() {
    if [[ $sym_sec_type == NOBITS ]]; then
        dd if=/dev/zero iflag=count_bytes bs=4096 status=none count="$sym_size"
    else
        dd if="$so" iflag=skip_bytes,count_bytes bs=4096 status=none \
            skip=$((sym_sec_off + sym_addr - sym_sec_addr)) count="$sym_size"
    fi
}

print_string() {
    local name=$1 hex value
    lookup "$name" || return 0
    if ((sym_size == 0)); then problem "$name: size 0"; return 0; fi
    hex=$(read_bytes | od -An -v -tx1 | tr -d ' \n')
    # Up to the first NUL, as C reads it.
    local i str=""
    for ((i = 0; i < ${#hex}; i += 2)); do
        [[ ${hex:i:2} == 00 ]] && break
        str+=${hex:i:2}
    done
    if ((i >= ${#hex})); then
        problem "$name: no NUL within its $sym_size bytes (Slurm would read past the end)"
    fi
    value=$(printf '%s' "$str" | sed 's/../\\x&/g')
    printf '%s=%b\n' "$name" "$value"
}

print_version() {
    local name=plugin_version hex b
    lookup "$name" || return 0
    if ((sym_size != 4)); then problem "$name: size $sym_size, expected 4 (uint32_t)"; fi
    ((sym_size >= 4)) || return 0
    sym_size=4
    hex=$(read_bytes | od -An -v -tx1 | tr -d ' \n')
    if [[ $endian == little ]]; then
        b=${hex:6:2}${hex:4:2}${hex:2:2}${hex:0:2}
    else
        b=$hex
    fi
    printf '%s=0x%06x\n' "$name" $((16#$b))
}

print_string plugin_name
print_string plugin_type
print_version
exit $status
