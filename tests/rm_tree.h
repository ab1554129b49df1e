/* rm_tree.h: removes a test's file or folder tree, for the test binaries and the fuzz targets.
 * Symbolic links are removed, not followed; a folder is made writable first (tests make read-only
 * ones); a path that does not fit is skipped. */
#ifndef SEEK_TESTS_RM_TREE_H
#define SEEK_TESTS_RM_TREE_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    chmod(path, 0755);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[4096];
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < sizeof sub) rm_tree(sub);
    }
    if (d) closedir(d);
    rmdir(path);
}

#endif
