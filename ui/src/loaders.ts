/**
 * three.js's loaders, one per format, each fetched by the browser only when a file of its format is
 * first shown (dynamic imports: the page itself loads without them).
 */
import * as THREE from 'three';

/** The .obj, its .mtl and texture out of the server's zip, drawn as one object. */
async function parseObjZip(data: ArrayBuffer): Promise<THREE.Object3D> {
  const [{ unzipSync }, { MTLLoader }, { OBJLoader }] = await Promise.all([
    import('fflate'),
    import('three/examples/jsm/loaders/MTLLoader.js'),
    import('three/examples/jsm/loaders/OBJLoader.js'),
  ]);
  const files = unzipSync(new Uint8Array(data));
  const names = Object.keys(files);
  const objName = names.find((n) => n.toLowerCase().endsWith('.obj'));
  if (!objName) throw new Error('the zip holds no .obj file');
  const text = (name: string) => new TextDecoder().decode(files[name]);
  const blobUrls = new Map<string, string>();
  for (const name of names) {
    if (/\.(png|jpe?g)$/i.test(name)) {
      const type = name.toLowerCase().endsWith('.png') ? 'image/png' : 'image/jpeg';
      blobUrls.set(name.split('/').pop() ?? name, URL.createObjectURL(new Blob([files[name] as BlobPart], { type })));
    }
  }
  const manager = new THREE.LoadingManager();
  manager.setURLModifier((url) => blobUrls.get(url.split('/').pop() ?? url) ?? url);
  const texturesLoaded = new Promise<void>((resolve) => {
    manager.onLoad = () => resolve();
    manager.onError = () => resolve();
  });
  const loader = new OBJLoader(manager);
  const mtlName = names.find((n) => n.toLowerCase().endsWith('.mtl'));
  if (mtlName) {
    const materials = new MTLLoader(manager).parse(text(mtlName), '');
    materials.preload();
    loader.setMaterials(materials);
  }
  const object = loader.parse(text(objName));
  if (blobUrls.size) await Promise.race([texturesLoaded, new Promise((r) => setTimeout(r, 5000))]);
  for (const url of blobUrls.values()) URL.revokeObjectURL(url);
  return object;
}

async function parseStl(data: ArrayBuffer): Promise<THREE.Object3D> {
  const { STLLoader } = await import('three/examples/jsm/loaders/STLLoader.js');
  const geometry = new STLLoader().parse(data);
  const hasColours = !!geometry.getAttribute('color');
  const material = new THREE.MeshStandardMaterial({ color: hasColours ? 0xffffff : 0xb8bec8, vertexColors: hasColours });
  material.flatShading = true;
  return new THREE.Mesh(geometry, material);
}

/** The object in `data`, a file in one of viewer.ts's DRAWABLE formats. */
export async function parseModel(format: string, data: ArrayBuffer): Promise<THREE.Object3D> {
  if (format === 'glb') {
    const { GLTFLoader } = await import('three/examples/jsm/loaders/GLTFLoader.js');
    return (await new GLTFLoader().parseAsync(data, '')).scene;
  }
  if (format === 'obj') return parseObjZip(data);
  if (format === 'stl') return parseStl(data);
  if (format === 'fbx') {
    const { FBXLoader } = await import('three/examples/jsm/loaders/FBXLoader.js');
    return new FBXLoader().parse(data, '');
  }
  if (format === 'usdz') {
    const { USDLoader } = await import('three/examples/jsm/loaders/USDLoader.js');
    return new USDLoader().parse(data, '');
  }
  throw new Error(`${format.toUpperCase()} cannot be drawn in the browser`);
}
