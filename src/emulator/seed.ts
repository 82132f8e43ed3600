/**
 * Deterministic, realistic customers for `--seed N`: Indian names, addresses
 * with real cities, states and PIN code prefixes, e-mail addresses, 10-digit
 * mobile numbers starting with 6-9, and UserIDs shaped like Trisul's
 * examples (`B68t19`). Customer `i` depends on `i` alone, so seeding 1..N is
 * the same set every time and a larger N extends a smaller one.
 */
import type { CustomerFields } from './request-body.js'

const FIRST_NAMES = [
  'Aarav',
  'Vivaan',
  'Aditya',
  'Vihaan',
  'Arjun',
  'Sai',
  'Reyansh',
  'Ayaan',
  'Krishna',
  'Ishaan',
  'Rohan',
  'Rahul',
  'Amit',
  'Suresh',
  'Ramesh',
  'Vikram',
  'Karthik',
  'Manoj',
  'Sanjay',
  'Deepak',
  'Rajesh',
  'Anil',
  'Sunil',
  'Naveen',
  'Prakash',
  'Harish',
  'Gaurav',
  'Nikhil',
  'Abhishek',
  'Siddharth',
  'Aadhya',
  'Ananya',
  'Diya',
  'Saanvi',
  'Priya',
  'Pooja',
  'Neha',
  'Kavya',
  'Meera',
  'Lakshmi',
  'Divya',
  'Sneha',
  'Anjali',
  'Shreya',
  'Ishita',
  'Nandini',
  'Swati',
  'Rekha',
  'Sunita',
  'Geeta',
  'Lalitha',
  'Padma',
  'Revathi',
  'Bhavana',
  'Aishwarya',
  'Fatima',
  'Ayesha',
  'Zoya',
  'Imran',
  'Farhan',
  'Gurpreet',
  'Harpreet',
  'Manpreet',
  'Joseph',
  'Thomas',
  'Mary',
  'Anitha',
  'Selvi',
  'Murugan',
  'Arun',
]

const SURNAMES = [
  'Sharma',
  'Verma',
  'Gupta',
  'Singh',
  'Kumar',
  'Patel',
  'Shah',
  'Mehta',
  'Joshi',
  'Desai',
  'Iyer',
  'Iyengar',
  'Nair',
  'Menon',
  'Pillai',
  'Reddy',
  'Rao',
  'Naidu',
  'Chowdary',
  'Krishnan',
  'Subramanian',
  'Venkatesan',
  'Raman',
  'Banerjee',
  'Chatterjee',
  'Mukherjee',
  'Bose',
  'Das',
  'Ghosh',
  'Sen',
  'Kulkarni',
  'Deshpande',
  'Patil',
  'Jadhav',
  'Pawar',
  'Shinde',
  'Agarwal',
  'Bansal',
  'Jain',
  'Malhotra',
  'Kapoor',
  'Khanna',
  'Chopra',
  'Sethi',
  'Gill',
  'Sandhu',
  'Khan',
  'Ahmed',
  'Siddiqui',
  'Qureshi',
  'Mishra',
  'Pandey',
  'Tiwari',
  'Dubey',
  'Yadav',
  'Chauhan',
  'Thakur',
  'Hegde',
  'Shetty',
  'Kamath',
]

/** City, state, the first three digits of its PIN codes, and a few localities. */
const CITIES: readonly (readonly [string, string, string, readonly string[]])[] = [
  ['Mumbai', 'Maharashtra', '400', ['Andheri East', 'Bandra West', 'Dadar', 'Powai', 'Borivali', 'Chembur']],
  ['Pune', 'Maharashtra', '411', ['Kothrud', 'Hinjewadi', 'Viman Nagar', 'Aundh', 'Hadapsar']],
  ['Delhi', 'Delhi', '110', ['Karol Bagh', 'Lajpat Nagar', 'Dwarka', 'Rohini', 'Saket', 'Janakpuri']],
  ['Bengaluru', 'Karnataka', '560', ['Koramangala', 'Indiranagar', 'Jayanagar', 'Whitefield', 'HSR Layout']],
  ['Mysuru', 'Karnataka', '570', ['Vijayanagar', 'Gokulam', 'Kuvempunagar']],
  ['Chennai', 'Tamil Nadu', '600', ['T Nagar', 'Adyar', 'Velachery', 'Anna Nagar', 'Mylapore']],
  ['Coimbatore', 'Tamil Nadu', '641', ['RS Puram', 'Peelamedu', 'Saibaba Colony']],
  [
    'Hyderabad',
    'Telangana',
    '500',
    ['Banjara Hills', 'Madhapur', 'Kukatpally', 'Secunderabad', 'Gachibowli'],
  ],
  ['Kolkata', 'West Bengal', '700', ['Salt Lake', 'Park Street', 'Behala', 'Ballygunge', 'New Town']],
  ['Ahmedabad', 'Gujarat', '380', ['Navrangpura', 'Satellite', 'Maninagar', 'Bopal']],
  ['Surat', 'Gujarat', '395', ['Adajan', 'Vesu', 'Athwa']],
  ['Jaipur', 'Rajasthan', '302', ['Malviya Nagar', 'Vaishali Nagar', 'Mansarovar', 'C Scheme']],
  ['Lucknow', 'Uttar Pradesh', '226', ['Gomti Nagar', 'Hazratganj', 'Aliganj', 'Indira Nagar']],
  ['Kochi', 'Kerala', '682', ['Kakkanad', 'Edappally', 'Fort Kochi', 'Kaloor']],
  ['Thiruvananthapuram', 'Kerala', '695', ['Pattom', 'Kowdiar', 'Vazhuthacaud']],
  ['Chandigarh', 'Chandigarh', '160', ['Sector 17', 'Sector 35', 'Sector 22']],
  ['Bhopal', 'Madhya Pradesh', '462', ['Arera Colony', 'MP Nagar', 'Kolar Road']],
  ['Indore', 'Madhya Pradesh', '452', ['Vijay Nagar', 'Palasia', 'Rajendra Nagar']],
  ['Bhubaneswar', 'Odisha', '751', ['Saheed Nagar', 'Patia', 'Nayapalli']],
  ['Guwahati', 'Assam', '781', ['Dispur', 'Paltan Bazaar', 'Beltola']],
  ['Patna', 'Bihar', '800', ['Boring Road', 'Kankarbagh', 'Rajendra Nagar']],
  ['Visakhapatnam', 'Andhra Pradesh', '530', ['MVP Colony', 'Dwaraka Nagar', 'Gajuwaka']],
  ['Nagpur', 'Maharashtra', '440', ['Dharampeth', 'Sitabuldi', 'Manish Nagar']],
  ['Ludhiana', 'Punjab', '141', ['Model Town', 'Sarabha Nagar', 'Civil Lines']],
]

const STREETS = [
  'MG Road',
  'Station Road',
  'Gandhi Road',
  'Nehru Street',
  'Temple Street',
  'Main Road',
  '1st Cross',
  '2nd Main',
  'Church Street',
  'Market Road',
  'Link Road',
  'Ring Road',
  'Lake View Road',
  'Park Avenue',
  'Tilak Marg',
  'Subhash Chandra Bose Road',
  'Ambedkar Road',
  'Rajaji Street',
  'Patel Marg',
  'Hill Road',
]

const BUILDINGS = ['', '', '', 'Flat', 'Plot No.', 'House No.', 'Door No.']
const MAIL_DOMAINS = [
  'gmail.com',
  'gmail.com',
  'gmail.com',
  'yahoo.co.in',
  'rediffmail.com',
  'outlook.com',
  'hotmail.com',
]

/** mulberry32: a small, fast, well-mixed 32-bit PRNG; plenty for fake data. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function pick<T>(rand: () => number, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)] as T
}

function digits(rand: () => number, count: number): string {
  let s = ''
  for (let k = 0; k < count; k++) s += Math.floor(rand() * 10)
  return s
}

/** An Indian mobile number: 10 digits, the first 6-9. */
function mobile(rand: () => number): string {
  return `${6 + Math.floor(rand() * 4)}${digits(rand, 9)}`
}

// UserIDs: letter, digit, digit, letter, then at least two digits (`B68t19`). The
// first 6,760,000 customers get a permuted position in that space (an affine map
// with a multiplier coprime to its size, so a bijection); later ones continue
// with three or more trailing digits. Either way distinct customers get distinct IDs.
const HEAD_SPACE = 26 * 10 * 10 * 26
const SHORT_SPACE = HEAD_SPACE * 100
const PERMUTE_MUL = 4194301
const PERMUTE_ADD = 1234567
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
const LOWER = 'abcdefghijklmnopqrstuvwxyz'

/** The UserID of seeded customer `i` (1-based); distinct for distinct `i`. */
export function seedUserId(i: number): string {
  let n = i - 1
  if (n < SHORT_SPACE) n = (n * PERMUTE_MUL + PERMUTE_ADD) % SHORT_SPACE
  const c1 = UPPER[n % 26]
  n = Math.floor(n / 26)
  const d1 = n % 10
  n = Math.floor(n / 10)
  const d2 = n % 10
  n = Math.floor(n / 10)
  const c2 = LOWER[n % 26]
  n = Math.floor(n / 26)
  return `${c1}${d1}${d2}${c2}${String(n).padStart(2, '0')}`
}

/** Seeded customer `i` (1-based). */
export function seedCustomer(i: number): CustomerFields {
  const rand = prng(Math.imul(i, 0x9e3779b1) ^ 0x5eed)
  const first = pick(rand, FIRST_NAMES)
  const last = pick(rand, SURNAMES)
  const [city, state, pin, localities] = pick(rand, CITIES)
  const building = pick(rand, BUILDINGS)
  const house = `${1 + Math.floor(rand() * 299)}${rand() < 0.2 ? `/${1 + Math.floor(rand() * 9)}` : ''}`
  const address = `${building ? `${building} ` : ''}${house}, ${pick(rand, STREETS)}, ${pick(rand, localities)}, ${city}, ${state} - ${pin}${digits(rand, 3)}`
  const mailNumber = rand() < 0.7 ? String(Math.floor(rand() * 1000)) : ''
  const separator = rand() < 0.5 ? '.' : ''
  return {
    UserID: seedUserId(i),
    Name: `${first} ${last}`,
    Address: address,
    Email: `${first}${separator}${last}${mailNumber}@${pick(rand, MAIL_DOMAINS)}`.toLowerCase(),
    PhoneNumber: mobile(rand),
    AltPhoneNumber: rand() < 0.4 ? mobile(rand) : '',
  }
}
