// A page's tags, kept as the custom entity `tag` (manifest: app.storage.entities).
import { kvs, WhereConditions, Sort } from '@forge/kvs';

interface Tag {
  page: string;
  label: string;
  weight: number;
}

export async function addTag(page: string, label: string, weight: number): Promise<{ key: string }> {
  const key = `${page}-${label}`;
  const tag: Tag = { page, label, weight };
  await kvs.entity<Tag>('tag').set(key, tag);
  return { key };
}

// The page's tags of at least `minWeight`, heaviest first.
export async function tagsOf(page: string, minWeight: number): Promise<Tag[]> {
  const result = await kvs
    .entity<Tag>('tag')
    .query()
    .index('by-page', { partition: [page] })
    .where(WhereConditions.greaterThanEqualTo(minWeight))
    .sort(Sort.DESC)
    .getMany();
  return result.results.map((r) => r.value);
}

// A tag with an attribute the entity does not declare: the platform refuses it.
export async function addBadTag(page: string): Promise<void> {
  await kvs.entity<Record<string, unknown>>('tag').set(`${page}-bad`, { page, colour: 'red' });
}
