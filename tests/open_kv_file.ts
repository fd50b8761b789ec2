/**
 * Opens a Deno KV file that other processes may be creating or writing at the same moment:
 * SQLite answers "database is locked" meanwhile, so the open is retried for about a second.
 */
export async function openKvFile(path: string | undefined): Promise<Deno.Kv> {
  for (let attempt = 0;; attempt++) {
    try {
      return await Deno.openKv(path);
    } catch (error) {
      if (attempt === 40 || !String(error).includes("database is locked")) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}
